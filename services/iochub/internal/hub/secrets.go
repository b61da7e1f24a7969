package hub

import (
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
)

// devTokens are the tokens of deploy/iochub.dev.yaml: public, written in its
// comments and printed by `make run`.
var devTokens = []string{"dev-producer-token-not-for-production", "dev-reader-token-not-for-production",
	"dev-health-token-not-for-production", "dev-admin-token-not-for-production", "dev-partner-token-not-for-production"}

// devNATSPasswords are the passwords of deploy/iochub.dev.yaml's NATS users.
var devNATSPasswords = []string{"dev-nats-password-not-for-production", "dev-sensor-password-not-for-production"}

// publicSecrets lists where the config holds a secret that is not one: a
// development value (public, in the repository) or an example's
// placeholder. placeholders are never usable; dev values only on loopback.
func (c *Config) publicSecrets() (dev, placeholders []string) {
	devHashes := map[string]bool{}
	for _, t := range devTokens {
		devHashes[httpedge.HashToken(t)] = true
	}
	token := func(where, sum string) {
		sum = strings.ToLower(strings.TrimSpace(sum))
		switch {
		case devHashes[sum]:
			dev = append(dev, where)
		case len(sum) > 0 && strings.Count(sum, sum[:1]) == len(sum): // 000…, 111…: the example's
			placeholders = append(placeholders, where)
		}
	}
	secret := func(where, v string) {
		switch {
		case strings.Contains(v, "not-for-production"):
			dev = append(dev, where)
		case strings.HasPrefix(v, "replace-with"):
			placeholders = append(placeholders, where)
		}
	}
	secret("pii_key", c.PIIKey)
	for i, p := range c.File.Gateway.Producers {
		token(fmt.Sprintf("gateway.producers[%d] (%s)", i, p.Name), p.TokenSHA256)
	}
	for i, r := range c.File.IOCAPI.Readers {
		token(fmt.Sprintf("iocapi.readers[%d] (%s)", i, r.Name), r.TokenSHA256)
	}
	for i, a := range c.File.Monitor.Admins {
		token(fmt.Sprintf("monitor.admins[%d] (%s)", i, a.Name), a.TokenSHA256)
	}
	for i, a := range c.File.Sharing.Agencies {
		token(fmt.Sprintf("sharing.agencies[%d] (%s)", i, a.Name), a.TokenSHA256)
	}
	if t := c.File.Connectors.Traffic; t != nil {
		secret("connectors.traffic.incident_secret", t.IncidentSecret)
	}
	if f := c.File.Connectors.Feedback; f != nil {
		secret("connectors.feedback.secret", f.Secret)
	}
	for i, u := range c.NATS.Access.Users {
		secret(fmt.Sprintf("nats.users[%d] (%s)", i, u.Name), u.PasswordBcrypt)
		for _, pw := range devNATSPasswords {
			if u.PasswordBcrypt != "" && bcrypt.CompareHashAndPassword([]byte(u.PasswordBcrypt), []byte(pw)) == nil {
				dev = append(dev, fmt.Sprintf("nats.users[%d] (%s)", i, u.Name))
			}
		}
	}
	return dev, placeholders
}

// exposed lists the listeners that accept connections from beyond this
// machine.
func (c *Config) exposed() []string {
	var out []string
	for _, l := range []struct{ flag, addr string }{
		{"--http-addr", c.HTTPAddr}, {"--debug-addr", c.DebugAddr},
		{"--nats-listen", embeddedOnly(c, c.NATS.Listen)}, {"--mqtt-listen", embeddedOnly(c, c.NATS.MQTTListen)},
	} {
		if l.addr != "" && !loopback(l.addr) {
			out = append(out, l.flag+" "+l.addr)
		}
	}
	return out
}

func embeddedOnly(c *Config, addr string) string {
	if !c.NATS.Embedded() {
		return ""
	}
	return addr
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkDebugAddr refuses pprof beyond loopback: it has no token, and a
// profile shows what the process holds.
func (c *Config) checkDebugAddr() error {
	if c.DebugAddr != "" && !loopback(c.DebugAddr) {
		return fmt.Errorf("--debug-addr %s: the profiles have no token; keep it on loopback (reach it with ssh -L)", c.DebugAddr)
	}
	return nil
}

// checkNATSUsers refuses an embedded listener beyond loopback that no
// configured user could use: the NATS port without an operator or a
// producer, the MQTT port without a sensor.
func (c *Config) checkNATSUsers() error {
	if !c.NATS.Embedded() {
		return nil
	}
	a := c.NATS.Access
	var errs []string
	if l := c.NATS.Listen; l != "" && !loopback(l) && !a.Has(natsjs.RoleOperator, natsjs.RoleProducer) {
		errs = append(errs, "--nats-listen "+l)
	}
	if l := c.NATS.MQTTListen; l != "" && !loopback(l) && !a.Has(natsjs.RoleSensor) {
		errs = append(errs, "--mqtt-listen "+l)
	}
	if len(errs) > 0 {
		return fmt.Errorf("refusing to listen on %s beyond loopback with no NATS user for it: list the operators, producers and sensors under nats.users (see deploy/iochub.example.yaml), or keep the listener on loopback", strings.Join(errs, ", "))
	}
	return nil
}

// checkSecrets refuses the example's placeholders anywhere, and the
// development secrets on a listener beyond loopback.
func (c *Config) checkSecrets() error {
	dev, placeholders := c.publicSecrets()
	if len(placeholders) > 0 {
		return fmt.Errorf("%s: still the example's placeholder; make a token with `iochub token` and a key of 32 random bytes or more", strings.Join(placeholders, ", "))
	}
	if exposed := c.exposed(); len(dev) > 0 && len(exposed) > 0 {
		return fmt.Errorf("refusing to listen on %s with the public development secrets of deploy/iochub.dev.yaml (%s): they are for loopback only; make your own with `iochub token` (see deploy/iochub.example.yaml)",
			strings.Join(exposed, ", "), strings.Join(dev, ", "))
	}
	return nil
}
