package natsjstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterUser and ClusterPassword sign in to a Cluster's account, which
// holds every stream, as the hub does against --nats-url.
const (
	ClusterUser     = "hub"
	ClusterPassword = "cluster-test-password"
)

// Cluster is a JetStream cluster of real nats-server processes on
// loopback, each with its own store, so that a test can SIGKILL one and
// start it again.
type Cluster struct {
	t     testing.TB
	bin   string
	nodes []*node
}

type node struct {
	name, conf string
	client     string // host:port of its client listener
	mu         sync.Mutex
	cmd        *exec.Cmd
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// serverBinary builds nats-server from the module the hub embeds, once per
// test binary: the same server, as a process.
func serverBinary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iochub-nats-server")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RunCluster starts n nats-server processes clustered on loopback with
// JetStream (one, not clustered, when n is 1), and waits until JetStream
// answers. They are killed when the test ends.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: serverBinary(t)}
	dir := t.TempDir()
	routes := make([]string, n)
	clients := make([]int, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", freePort(t))
		clients[i] = freePort(t)
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		cluster := fmt.Sprintf("cluster { name: iochub-test, listen: %q, routes: [%s] }\n", strings.TrimPrefix(routes[i], "nats-route://"), strings.Join(routes, ", "))
		if n == 1 {
			cluster = "" // one server: not clustered
		}
		cfg := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_file_store: 64GB, max_memory_store: 256MB }
%saccounts { HUB: { jetstream: enabled, users: [{user: %s, password: %s}] } }
`, name, clients[i], filepath.Join(dir, name), cluster, ClusterUser, ClusterPassword)
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &node{name: name, conf: conf, client: "127.0.0.1:" + strconv.Itoa(clients[i])})
	}
	for i := range c.nodes {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Kill(i)
		}
	})
	c.waitReady()
	return c
}

// URL is every node's client URL, comma-separated, as --nats-url takes them.
func (c *Cluster) URL() string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, "nats://"+n.client)
	}
	return strings.Join(out, ",")
}

// Start starts node i (again, on its store).
func (c *Cluster) Start(i int) {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd := exec.Command(c.bin, "-c", n.conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.name, err)
	}
	go func() { _ = cmd.Wait() }()
	n.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", n.client)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s does not listen on %s", n.name, n.client)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill SIGKILLs node i.
func (c *Cluster) Kill(i int) {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		n.cmd = nil
	}
}

// Index is the index of the node named name (a stream's leader).
func (c *Cluster) Index(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// Connect is a client of the cluster's account.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.UserInfo(ClusterUser, ClusterPassword), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Leader is the name of the node leading stream, waiting until it has one.
func (c *Cluster) Leader(t testing.TB, js jetstream.JetStream, stream string) string {
	t.Helper()
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := js.Stream(ctx, stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				cancel()
				return info.Cluster.Leader
			}
			if err == nil {
				err = errors.New("no leader yet")
			}
		}
		cancel()
		last = err
	}
	t.Fatalf("stream %s has no leader after 60s: %v", stream, last)
	return ""
}

// waitReady waits until the cluster answers JetStream requests (it has a
// meta leader).
func (c *Cluster) waitReady() {
	_, js := c.Connect(c.t)
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		last = err
	}
	c.t.Fatalf("the cluster's JetStream is not ready after 60s: %v", last)
}

// CPUSeconds is the CPU time the running nodes used so far (user and
// system, from /proc), for benchmarks of what the servers cost.
func (c *Cluster) CPUSeconds() float64 {
	var total float64
	for _, n := range c.nodes {
		n.mu.Lock()
		if n.cmd != nil {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid)); err == nil {
				// Fields after the command's closing parenthesis: utime is
				// the 12th, stime the 13th (clock ticks, 100 a second).
				if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 12 {
					u, _ := strconv.ParseFloat(f[11], 64)
					s, _ := strconv.ParseFloat(f[12], 64)
					total += (u + s) / 100
				}
			}
		}
		n.mu.Unlock()
	}
	return total
}
