package natsjs

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/iochub/iochub/pkg/event"
)

// Roles of the users of the embedded server.
const (
	// RoleOperator may do everything in the hub's account: `iochub dlq`,
	// the nats command line, a backup. NATS protocol only.
	RoleOperator = "operator"
	// RoleProducer publishes its types' subjects (ioc.<sector>.<name>.v<n>)
	// and reads the acks on its own inbox prefix, _INBOX_<name>. The
	// aggregator validates and pseudonymizes its events and checks its
	// sources. NATS protocol only.
	RoleProducer = "producer"
	// RoleSensor publishes its sensor subjects (under traffic.sensors.)
	// over MQTT, nothing else, in the sensors' own account.
	RoleSensor = "sensor"
	// RoleSubscriber is a partner agency's system on the NATS fabric: it
	// reads the consumers of its agency's own stream (ShareStream), which
	// the hub fills with what its subscriptions of mode nats are granted,
	// and acks there; it reads nothing else (not IOC_EVENTS, not another
	// agency's stream) and creates nothing. Replies come on _INBOX_<name>.
	RoleSubscriber = "subscriber"
)

// ShareStream is the stream the hub fills for agency's subscriptions of
// mode nats, one subject each (ShareSubject).
func ShareStream(agency string) string { return "IOC_SHARE_" + agency }

// ShareSubject is subscription's subject in its agency's ShareStream; its
// consumer there is named as the subscription.
func ShareSubject(agency, subscription string) string {
	return "share." + agency + "." + subscription
}

// The embedded server's accounts, and the hub's own user in the first.
const (
	// HubAccount holds every stream of the hub; its JetStream store is
	// <store>/jetstream/HUB.
	HubAccount = "HUB"
	// SensorAccount is where MQTT sensors connect: their sessions and
	// retained messages count against its own storage limit, and only
	// SensorSubjects flow from it into HubAccount.
	SensorAccount = "SENSORS"
	// HubUser is the hub's in-process connection: in-process only, with a
	// password made at each start and kept nowhere.
	HubUser = "iochub"
	// SensorSubjects are the subjects sensors publish (MQTT topic
	// traffic/sensors/… is subject traffic.sensors.…).
	SensorSubjects = "traffic.sensors.>"
)

// DefaultSensorsMaxStore bounds what MQTT sensors can make the server keep
// (sessions, retained messages).
const DefaultSensorsMaxStore = 256 << 20

// Access is who may use the embedded server: the config file's `nats:`.
// Nobody connects anonymously; the hub itself connects in-process.
type Access struct {
	Users []User   `yaml:"users"`
	TLS   TLSFiles `yaml:"tls"`
	// MaxStore bounds the hub account's JetStream file store, in bytes; 0:
	// only the streams' own limits (--events-max-bytes). Set it below the
	// disk's size: a full disk stops every stream at once.
	MaxStore int64 `yaml:"max_store"`
	// SensorsMaxStore bounds the sensors' account; 0: DefaultSensorsMaxStore.
	SensorsMaxStore int64 `yaml:"sensors_max_store"`
}

// User is one identity of the embedded server.
type User struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// NKey is the user's public NKey (U…); the user holds the seed. Not for
	// sensors (MQTT presents a password).
	NKey string `yaml:"nkey"`
	// PasswordBcrypt is the bcrypt hash of the user's password (`iochub
	// natsuser` makes both).
	PasswordBcrypt string `yaml:"password_bcrypt"`
	// Subjects a sensor may publish, each under traffic.sensors.
	Subjects []string `yaml:"subjects"`
	// Scope of a producer: its types (the subjects it may publish) and its
	// source prefixes (the aggregator refuses events outside them).
	event.Scope `yaml:",inline"`
	// Agency of a subscriber: a name in sharing.agencies.
	Agency string `yaml:"agency"`
}

// TLSFiles turn TLS on for the client and MQTT listeners. With CA set,
// clients must present a certificate it signed.
type TLSFiles struct {
	Cert string `yaml:"cert_file"`
	Key  string `yaml:"key_file"`
	CA   string `yaml:"ca_file"`
}

// On reports whether TLS is configured.
func (t TLSFiles) On() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

var (
	userName    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	bcryptHash  = regexp.MustCompile(`^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$`)
	subjectPart = regexp.MustCompile(`^([a-zA-Z0-9_-]+|\*|>)$`)
)

// Validate names every problem, each at its place in the config file.
func (a Access) Validate() error {
	var errs []error
	seen := map[string]bool{HubUser: true}
	for i, u := range a.Users {
		where := fmt.Sprintf("nats.users[%d] (%s)", i, u.Name)
		if !userName.MatchString(u.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be 1-63 of a-z 0-9 _ - (it is the producer's inbox prefix)", where))
		} else if seen[u.Name] {
			errs = append(errs, fmt.Errorf("%s: name already used (%q is the hub's own)", where, HubUser))
		}
		seen[u.Name] = true
		switch {
		case u.NKey != "" && u.PasswordBcrypt != "":
			errs = append(errs, fmt.Errorf("%s: give nkey or password_bcrypt, not both", where))
		case u.NKey != "":
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				errs = append(errs, fmt.Errorf("%s: nkey must be a user's public NKey (U…, from `iochub natsuser --nkey FILE`)", where))
			}
			if u.Role == RoleSensor {
				errs = append(errs, fmt.Errorf("%s: a sensor presents a password over MQTT: give password_bcrypt", where))
			}
		case u.PasswordBcrypt != "":
			if !bcryptHash.MatchString(u.PasswordBcrypt) {
				errs = append(errs, fmt.Errorf("%s: password_bcrypt must be a bcrypt hash ($2a$…, from `iochub natsuser`), never the password", where))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: give nkey or password_bcrypt", where))
		}
		if u.Agency != "" && u.Role != RoleSubscriber {
			errs = append(errs, fmt.Errorf("%s: agency is for a subscriber", where))
		}
		switch u.Role {
		case RoleSubscriber:
			if !userName.MatchString(u.Agency) || strings.Contains(u.Agency, "_") {
				errs = append(errs, fmt.Errorf("%s: agency must name one of sharing.agencies", where))
			}
			if len(u.Subjects) > 0 || len(u.Sources) > 0 || len(u.Types) > 0 {
				errs = append(errs, fmt.Errorf("%s: a subscriber receives what its agency's grants allow; subjects, sources and types are for sensors and producers", where))
			}
		case RoleOperator:
			if len(u.Subjects) > 0 || len(u.Sources) > 0 || len(u.Types) > 0 {
				errs = append(errs, fmt.Errorf("%s: an operator has every right; subjects, sources and types are for sensors and producers", where))
			}
		case RoleProducer:
			if err := u.Scope.Validate(where); err != nil {
				errs = append(errs, err)
			}
			for _, t := range u.Types {
				if _, err := typeSubject(t); err != nil {
					errs = append(errs, fmt.Errorf("%s: types: %w", where, err))
				}
			}
		case RoleSensor:
			if len(u.Subjects) == 0 {
				errs = append(errs, fmt.Errorf("%s: subjects must list what the sensor publishes (e.g. traffic.sensors.bn.>)", where))
			}
			for _, s := range u.Subjects {
				if !sensorSubject(s) {
					errs = append(errs, fmt.Errorf("%s: subject %q: must be under traffic.sensors. (tokens of a-z 0-9 _ -, or * and a final >)", where, s))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("%s: role must be %s, %s, %s or %s, got %q", where, RoleOperator, RoleProducer, RoleSensor, RoleSubscriber, u.Role))
		}
	}
	if a.TLS.On() && (a.TLS.Cert == "" || a.TLS.Key == "") {
		errs = append(errs, errors.New("nats.tls: cert_file and key_file go together"))
	}
	if a.MaxStore < 0 || a.SensorsMaxStore < 0 {
		errs = append(errs, errors.New("nats.max_store, nats.sensors_max_store: bytes, not negative"))
	}
	return errors.Join(errs...)
}

// Has reports whether a user of one of roles is configured.
func (a Access) Has(roles ...string) bool {
	return slices.ContainsFunc(a.Users, func(u User) bool { return slices.Contains(roles, u.Role) })
}

// Producers are the scopes of the direct NATS producers: an event the hub
// did not admit must fall within one of them.
func (a Access) Producers() []event.Scope {
	var out []event.Scope
	for _, u := range a.Users {
		if u.Role == RoleProducer {
			out = append(out, u.Scope)
		}
	}
	return out
}

// typeSubject is the subject pattern of an event type or type prefix:
// vn.ioc.health.visit.v1 → ioc.health.visit.v1, vn.ioc.health.* →
// ioc.health.>.
func typeSubject(t string) (string, error) {
	if p, ok := strings.CutSuffix(t, "*"); ok {
		if p != "vn.ioc." && (!strings.HasPrefix(p, "vn.ioc.") || !strings.HasSuffix(p, ".") || strings.Count(p, ".") > 4) {
			return "", fmt.Errorf("%q: a prefix must end on a dot, e.g. vn.ioc.health.*", t)
		}
		return strings.TrimPrefix(p, "vn.") + ">", nil
	}
	tn, err := event.ParseType(t)
	if err != nil {
		return "", err
	}
	return tn.Subject(), nil
}

func sensorSubject(s string) bool {
	rest, ok := strings.CutPrefix(s, "traffic.sensors.")
	if !ok || rest == "" {
		return false
	}
	parts := strings.Split(rest, ".")
	for i, p := range parts {
		if !subjectPart.MatchString(p) || (p == ">" && i != len(parts)-1) {
			return false
		}
	}
	return true
}

// ProducerInbox is the inbox prefix a producer's (or subscriber's) client must use
// (nats.CustomInboxPrefix) to read its publish acks: it may subscribe there
// and nowhere else, so it never reads another client's replies.
func ProducerInbox(name string) string { return "_INBOX_" + name }

// serverConfig is the embedded server's accounts and users, in the server's
// own configuration language (JSON is a subset of it). hubPassword is the
// hub's in-process password.
func (a Access) serverConfig(hubPassword string) (string, error) {
	type perm struct {
		Allow []string `json:"allow,omitempty"`
		Deny  []string `json:"deny,omitempty"`
	}
	type perms struct {
		Publish   perm `json:"publish"`
		Subscribe perm `json:"subscribe"`
	}
	type user struct {
		User     string   `json:"user,omitempty"`
		Password string   `json:"password,omitempty"`
		NKey     string   `json:"nkey,omitempty"`
		Perms    *perms   `json:"permissions,omitempty"`
		Types    []string `json:"allowed_connection_types"`
	}
	hub := []user{{User: HubUser, Password: hubPassword, Types: []string{"IN_PROCESS"}}}
	sensors := []user{}
	for _, u := range a.Users {
		cu := user{NKey: u.NKey, Types: []string{"STANDARD"}}
		if u.NKey == "" {
			cu.User, cu.Password = u.Name, u.PasswordBcrypt
		}
		switch u.Role {
		case RoleProducer:
			p := &perms{Subscribe: perm{Allow: []string{ProducerInbox(u.Name) + ".>"}}}
			for _, t := range u.Types {
				s, err := typeSubject(t)
				if err != nil {
					return "", err
				}
				p.Publish.Allow = append(p.Publish.Allow, s)
			}
			cu.Perms = p
		case RoleSubscriber:
			// What nats.go's jetstream package sends to read a durable
			// pull consumer (its info, the next messages, the acks), for
			// the consumers of the agency's stream only.
			st := ShareStream(u.Agency)
			cu.Perms = &perms{
				Publish:   perm{Allow: []string{"$JS.API.CONSUMER.INFO." + st + ".*", "$JS.API.CONSUMER.MSG.NEXT." + st + ".*", "$JS.ACK." + st + ".>"}},
				Subscribe: perm{Allow: []string{ProducerInbox(u.Name) + ".>"}},
			}
		case RoleSensor:
			cu.Types = []string{"MQTT"}
			cu.Perms = &perms{Publish: perm{Allow: u.Subjects}, Subscribe: perm{Deny: []string{">"}}}
			sensors = append(sensors, cu)
			continue
		}
		hub = append(hub, cu)
	}
	limit := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	sensorsMax := a.SensorsMaxStore
	if sensorsMax == 0 {
		sensorsMax = DefaultSensorsMaxStore
	}
	cfg := map[string]any{"accounts": map[string]any{
		HubAccount: map[string]any{
			"jetstream": map[string]any{"max_file": limit(a.MaxStore), "max_mem": 256 << 20},
			"users":     hub,
			"imports":   []any{map[string]any{"stream": map[string]string{"account": SensorAccount, "subject": SensorSubjects}}},
		},
		SensorAccount: map[string]any{
			"jetstream": map[string]any{"max_file": sensorsMax, "max_mem": 32 << 20},
			"users":     sensors,
			"exports":   []any{map[string]string{"stream": SensorSubjects}},
		},
	}}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // ">" is a subject's wildcard; the server's parser knows no \u escapes
	err := enc.Encode(cfg)
	return b.String(), err
}

// newPassword is a random password for the hub's in-process user.
func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// moveGlobalStore moves a store written before the hub had accounts (its
// streams in the global account, $G) to HubAccount, once: every event,
// dead letter and checkpoint is kept.
func moveGlobalStore(storeDir string) error {
	old := filepath.Join(storeDir, "jetstream", "$G")
	hub := filepath.Join(storeDir, "jetstream", HubAccount)
	if _, err := os.Stat(old); err != nil {
		return nil // nothing from before
	}
	if _, err := os.Stat(hub); err == nil {
		return fmt.Errorf("embedded nats: %s and %s both exist: the store was written with and without accounts; move what %s holds aside", old, hub, old)
	}
	if err := os.Rename(old, hub); err != nil {
		return fmt.Errorf("embedded nats: moving the store to the hub's account: %w", err)
	}
	return nil
}
