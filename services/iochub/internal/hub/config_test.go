package hub

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/gateway"
)

// TestConfigFileOverDefaults: the file is decoded once over the defaults
// (what it leaves out keeps its default), its time zone is parsed as it is
// read, and a bad one is named.
func TestConfigFileOverDefaults(t *testing.T) {
	tests := []struct {
		name, yaml string
		wantErr    string
		check      func(t *testing.T, c Config)
	}{
		{name: "defaults kept", yaml: "pii_key: 0123456789abcdef0123456789abcdef\ngateway: {max_batch_events: 7}\nhttp: {read_header_timeout: 3s}\n",
			check: func(t *testing.T, c Config) {
				d := gateway.DefaultConfig()
				if c.File.Gateway.MaxBatchEvents != 7 || c.File.Gateway.MaxBodyBytes != d.MaxBodyBytes || c.File.Gateway.RetryAfterSeconds != d.RetryAfterSeconds {
					t.Errorf("gateway %+v: want max_batch_events 7 and the other limits' defaults", c.File.Gateway)
				}
				if c.File.HTTP.ReadHeaderTimeout != 3*time.Second || c.File.HTTP.IdleTimeout == 0 {
					t.Errorf("http %+v", c.File.HTTP)
				}
				if c.File.IOCAPI.Timezone.String() != "Asia/Ho_Chi_Minh" || c.PIIKey != "0123456789abcdef0123456789abcdef" {
					t.Errorf("time zone %s, key %q", c.File.IOCAPI.Timezone, c.PIIKey)
				}
			}},
		{name: "time zone parsed once, when read", yaml: "pii_key: 0123456789abcdef0123456789abcdef\niocapi: {timezone: Asia/Bangkok}\n",
			check: func(t *testing.T, c Config) {
				if c.File.IOCAPI.Timezone.Loc().String() != "Asia/Bangkok" {
					t.Errorf("time zone %s", c.File.IOCAPI.Timezone)
				}
			}},
		{name: "bad time zone named", yaml: "iocapi: {timezone: Nowhere/City}\n", wantErr: "iocapi.timezone"},
		{name: "unknown key named", yaml: "gateway: {max_bodybytes: 1}\n", wantErr: "max_bodybytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Services = "aggregator"
			c.NATS.DataDir = t.TempDir()
			c.ConfigFile = filepath.Join(t.TempDir(), "iochub.yaml")
			if err := os.WriteFile(c.ConfigFile, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			err := c.Load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestFlagDefaultsAreTheComponents': DefaultConfig is what the flags give
// with no argument, and each component's numbers come from the component.
func TestFlagDefaultsAreTheComponents(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.Aggregator.BatchMaxEvents != 5000 || !reflect.DeepEqual(c.Aggregator, d.Aggregator) || c.Streams != d.Streams || !reflect.DeepEqual(c.NATS, d.NATS) {
		t.Fatalf("flags %+v / %+v, defaults %+v / %+v", c.Aggregator, c.Streams, d.Aggregator, d.Streams)
	}
	if c.Services != "gateway,aggregator,connectors,iocapi,monitor,sharing" {
		t.Fatalf("--services default %q", c.Services)
	}
}

func TestMonitorConfigIsValidated(t *testing.T) {
	c := DefaultConfig()
	c.NATS.DataDir, c.PIIKey, c.Services = t.TempDir(), "0123456789abcdef0123456789abcdef", "monitor"
	c.File.Monitor.DiskFullPercent = 140
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "monitor.disk_full_percent") {
		t.Fatalf("err = %v, want one naming monitor.disk_full_percent", err)
	}
}

// A subscriber NATS user names an agency of sharing.agencies.
func TestSubscriberUserNamesAnAgency(t *testing.T) {
	c := DefaultConfig()
	c.NATS.DataDir, c.PIIKey, c.Services = t.TempDir(), "0123456789abcdef0123456789abcdef", "monitor"
	c.NATS.Access.Users = []natsjs.User{{Name: "yte", Role: natsjs.RoleSubscriber, Agency: "so-y-te", PasswordBcrypt: "$2a$06$jPEn9HHwOju9MHEiNv/gUuJ21SSpUOfJo5ZYo11uP.Ix9q7ppVNqq"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `agency "so-y-te" is not in sharing.agencies`) {
		t.Fatalf("err = %v, want one naming the missing agency", err)
	}
}

// --lease-ttl is bounded by the start's deadline.
func TestLeaseTTLIsBounded(t *testing.T) {
	for _, ttl := range []time.Duration{500 * time.Millisecond, MaxLeaseTTL + time.Second} {
		c := DefaultConfig()
		c.NATS.DataDir, c.PIIKey, c.Services, c.LeaseTTL = t.TempDir(), "0123456789abcdef0123456789abcdef", "monitor", ttl
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--lease-ttl "+ttl.String()+": want 1s to 10s") {
			t.Errorf("--lease-ttl %s: %v", ttl, err)
		}
	}
}

// TestPublicSecretsStayOnLoopback (finding H7): the development config's
// public tokens, key and secrets run on loopback only; the example's
// placeholders run nowhere.
func TestPublicSecretsStayOnLoopback(t *testing.T) {
	tests := []struct {
		name, file string
		change     func(*Config)
		wantErr    []string // all in the error; none: no error
	}{
		{name: "dev config on loopback", file: "iochub.dev.yaml", change: func(c *Config) {
			t.Cleanup(func() { // the connectors' sources are reserved from the gateway's producers
				if c.File.Gateway.Reserved["/feedback/portal"] != "feedback-portal" || c.File.Gateway.Reserved["/health/fhir/"] != "health-fhir" {
					t.Errorf("reserved sources %v", c.File.Gateway.Reserved)
				}
			})
		}},
		{name: "dev config on every interface", file: "iochub.dev.yaml", change: func(c *Config) { c.HTTPAddr = "0.0.0.0:8080" },
			wantErr: []string{"refusing to listen on --http-addr 0.0.0.0:8080", "gateway.producers[0] (dev)", "pii_key", "iocapi.readers[0]", "monitor.admins[0]", "connectors.feedback.secret"}},
		{name: "dev config with NATS on the network", file: "iochub.dev.yaml", change: func(c *Config) { c.NATS.Listen = "10.0.0.5:4222" },
			wantErr: []string{"--nats-listen 10.0.0.5:4222", "nats.users[0] (dev-ops)", "nats.users[1] (dev-sensors)"}},
		{name: "dev config, NATS elsewhere", file: "iochub.dev.yaml", change: func(c *Config) { c.NATS.URL, c.NATS.Listen = "nats://10.0.0.5:4222", "0.0.0.0:4222" }},
		{name: "pprof on the network", file: "iochub.dev.yaml", change: func(c *Config) { c.DebugAddr = "0.0.0.0:6060" },
			wantErr: []string{"--debug-addr 0.0.0.0:6060: the profiles have no token"}},
		{name: "the example as it is", file: "iochub.example.yaml", wantErr: []string{"still the example's placeholder", "pii_key", "gateway.producers[0]", "nats.users[0] (ops)", "nats.users[2] (he-thong-so-y-te)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Services = "gateway"
			c.NATS.DataDir = t.TempDir()
			c.NATS.MQTTListen = "127.0.0.1:1883"
			c.ConfigFile = filepath.Join("..", "..", "..", "..", "deploy", tt.file)
			if tt.change != nil {
				tt.change(&c)
			}
			err := c.Load()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("err = %v, want one naming %q", err, w)
				}
			}
		})
	}
}

// TestNATSListenersNeedUsers (finding C1): the embedded server's NATS and
// MQTT ports go beyond loopback only when a user could use them.
func TestNATSListenersNeedUsers(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	hash, _ := bcrypt.GenerateFromPassword([]byte("a sensor's password"), bcrypt.MinCost)
	base := "pii_key: \"" + strings.Repeat("k", 40) + "\"\ngateway:\n  producers:\n    - {name: p, token_sha256: \"" + httpedge.HashToken("a-token-of-the-test") + "\", sources: [\"/a\"], types: [\"vn.ioc.*\"]}\n"
	operator := "nats:\n  users:\n    - {name: ops, role: operator, nkey: " + pub + "}\n"
	sensor := "    - {name: loops, role: sensor, password_bcrypt: \"" + string(hash) + "\", subjects: [\"traffic.sensors.>\"]}\n"
	tests := []struct {
		name, file, listen, mqtt string
		wantErr                  []string
	}{
		{name: "no users, loopback", file: base, listen: "127.0.0.1:4222", mqtt: "127.0.0.1:1883"},
		{name: "no users, NATS on the network", file: base, listen: "0.0.0.0:4222", wantErr: []string{"refusing to listen on --nats-listen 0.0.0.0:4222", "nats.users"}},
		{name: "no users, MQTT on the network", file: base, listen: "127.0.0.1:4222", mqtt: "10.1.2.3:1883", wantErr: []string{"--mqtt-listen 10.1.2.3:1883"}},
		{name: "an operator, NATS on the network", file: base + operator, listen: "0.0.0.0:4222"},
		{name: "an operator, MQTT on the network", file: base + operator, listen: "127.0.0.1:4222", mqtt: "0.0.0.0:1883", wantErr: []string{"--mqtt-listen 0.0.0.0:1883"}},
		{name: "a sensor, MQTT on the network", file: base + operator + sensor, listen: "0.0.0.0:4222", mqtt: "0.0.0.0:1883"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Services = "gateway"
			c.NATS.DataDir = t.TempDir()
			c.NATS.Listen, c.NATS.MQTTListen = tt.listen, tt.mqtt
			c.ConfigFile = filepath.Join(t.TempDir(), "iochub.yaml")
			if err := os.WriteFile(c.ConfigFile, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			err := c.Load()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("err = %v, want one naming %q", err, w)
				}
			}
		})
	}
}

// TestPIIKeyNeverAFlag (findings H7, L5): the personal-data key comes from
// IOCHUB_PII_KEY, a key file, or the config file, each readable by its
// owner only; it is 32 bytes or more; its id goes into every pseudonym.
func TestPIIKeyNeverAFlag(t *testing.T) {
	const key = "a-personal-data-key-of-32-bytes-or-more"
	producers := "gateway:\n  producers:\n    - {name: p, token_sha256: \"" + httpedge.HashToken("a-token-of-the-test") + "\", sources: [\"/a\"], types: [\"vn.ioc.*\"]}\n"
	write := func(t *testing.T, name, text string, mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		env     string
		setup   func(t *testing.T, c *Config)
		wantKey string
		wantErr string
	}{
		{name: "the variable", env: key, setup: func(t *testing.T, c *Config) { c.ConfigFile = write(t, "c.yaml", producers, 0o644) }, wantKey: key},
		{name: "a key file", setup: func(t *testing.T, c *Config) {
			c.ConfigFile = write(t, "c.yaml", producers, 0o644)
			c.PIIKeyFile = write(t, "pii.key", key+"\n", 0o600)
		}, wantKey: key},
		{name: "a key file others may read", setup: func(t *testing.T, c *Config) {
			c.ConfigFile = write(t, "c.yaml", producers, 0o644)
			c.PIIKeyFile = write(t, "pii.key", key, 0o640)
		}, wantErr: "--pii-key-file: "},
		{name: "pii_key_file in the config file", setup: func(t *testing.T, c *Config) {
			c.ConfigFile = write(t, "c.yaml", producers+"pii_key_file: "+write(t, "pii.key", key, 0o600)+"\n", 0o644)
		}, wantKey: key},
		{name: "the key in a private config file", setup: func(t *testing.T, c *Config) {
			c.ConfigFile = write(t, "c.yaml", producers+"pii_key: "+key+"\n", 0o600)
		}, wantKey: key},
		{name: "the key in a config file others may read", setup: func(t *testing.T, c *Config) {
			c.ConfigFile = write(t, "c.yaml", producers+"pii_key: "+key+"\n", 0o644)
		}, wantErr: "readable by others (mode 0644)"},
		{name: "a short key", env: "only-31-bytes-long-0123456789ab", setup: func(t *testing.T, c *Config) { c.ConfigFile = write(t, "c.yaml", producers, 0o600) },
			wantErr: "32 random bytes or more"},
		{name: "a bad key id", env: key, setup: func(t *testing.T, c *Config) {
			c.ConfigFile = write(t, "c.yaml", producers+"pii_key_id: \"K:1\"\n", 0o600)
		}, wantErr: "pii_key_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("IOCHUB_PII_KEY", tt.env)
			c := DefaultConfig()
			c.Services = "gateway"
			c.NATS.DataDir = t.TempDir()
			tt.setup(t, &c)
			err := c.Load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.PIIKey != tt.wantKey {
				t.Fatalf("err %v, key %q; want %q", err, c.PIIKey, tt.wantKey)
			}
		})
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Config
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--pii-key", key}); err == nil {
		t.Fatal("--pii-key is a flag: the key would show in the process list")
	}
}
