package chstoretest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
)

// ClusterName is the cluster StartCluster declares in every server's
// remote_servers.
const ClusterName = "iochub"

// zkServer is Debian's zookeeper start script (package zookeeperd, which
// `make test` installs with deploy/zookeeper/ensure.sh).
const zkServer = "/usr/share/zookeeper/bin/zkServer.sh"

// Cluster is ClickHouse servers of a test's own coordinated by a ZooKeeper
// of its own, on loopback: Shards shards of Replicas replicas each, in
// ClusterName, with the macros {shard} and {replica} set on each.
type Cluster struct {
	Shards, Replicas int
	Nodes            []*Server // shard by shard: Nodes[s*Replicas+r]
}

// StartCluster starts ZooKeeper and shards×replicas ClickHouse servers,
// all killed when the test ends. A test that needs one fails here, loudly,
// when ZooKeeper or ClickHouse is not installed.
func StartCluster(t testing.TB, shards, replicas int) *Cluster {
	t.Helper()
	zk := startZooKeeper(t)
	c := &Cluster{Shards: shards, Replicas: replicas}
	type node struct{ port, http, inter string }
	nodes := make([]node, shards*replicas)
	for i := range nodes {
		nodes[i] = node{FreePort(t), FreePort(t), FreePort(t)}
	}
	var remote strings.Builder
	for s := 0; s < shards; s++ {
		remote.WriteString("<shard><internal_replication>true</internal_replication>")
		for r := 0; r < replicas; r++ {
			fmt.Fprintf(&remote, "<replica><host>127.0.0.1</host><port>%s</port></replica>", nodes[s*replicas+r].port)
		}
		remote.WriteString("</shard>")
	}
	for s := 0; s < shards; s++ {
		for r := 0; r < replicas; r++ {
			n := nodes[s*replicas+r]
			config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>%s</interserver_http_port>
    <zookeeper><node><host>127.0.0.1</host><port>%s</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
    <macros><shard>%02d</shard><replica>r%d</replica></macros>
    <remote_servers><%s>%s</%s></remote_servers>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
`, n.inter, zk, s+1, r+1, ClusterName, remote.String(), ClusterName)
			c.Nodes = append(c.Nodes, startServerOn(t, config, n.port, n.http))
		}
	}
	return c
}

// startServerOn is StartServer on the given ports.
func startServerOn(t testing.TB, config, port, http string) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "iochub-ch")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	s := &Server{Dir: dir, Port: port, http: http}
	t.Cleanup(func() {
		s.Kill(t)
		_ = os.RemoveAll(dir)
	})
	d := filepath.Join(dir, "clickhouse", "config.d")
	if config != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "extra.xml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.Start(t)
	return s
}

// startZooKeeper starts a standalone ZooKeeper on loopback with its data in
// a temporary directory, and returns its client port.
func startZooKeeper(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(zkServer); err != nil {
		t.Fatalf("ZooKeeper is needed (%s; run `make test`, which installs Debian's zookeeperd with deploy/zookeeper/ensure.sh): %v", zkServer, err)
	}
	dir := t.TempDir()
	port := FreePort(t)
	cfg := fmt.Sprintf("tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxSessionTimeout=60000\n4lw.commands.whitelist=ruok\n",
		filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/etc/zookeeper/conf/log4j.properties"); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "log4j.properties"), b, 0o644)
	}
	log, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zkServer, "start-foreground", filepath.Join(dir, "zoo.cfg"))
	cmd.Env = append(os.Environ(), "ZOOCFGDIR="+dir, "ZOO_LOG_DIR="+dir, "JVMFLAGS=-Xmx256m")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ZooKeeper: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		_ = log.Close()
	})
	polltest.True(t, "ZooKeeper answering", 2*time.Minute, func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("ZooKeeper exited:\n%s", b)
		default:
		}
		return ruok(port)
	})
	return port
}

// ruok is ZooKeeper's four-letter health check.
func ruok(port string) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ruok")); err != nil {
		return false
	}
	b := make([]byte, 4)
	n, _ := c.Read(b)
	return string(b[:n]) == "imok"
}

// Open opens a store on node i of the cluster, on database db, laid out
// on the cluster (chstore.WithCluster); closed when the test ends.
func (c *Cluster) Open(t testing.TB, i int, db string) *chstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := chstore.Open(ctx, c.Nodes[i].DSN(db), chstore.WithCluster(ClusterName))
	if err != nil {
		t.Fatalf("open node %d of the cluster: %v", i, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
