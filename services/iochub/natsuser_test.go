package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
)

// TestNATSUserMakesUsersTheServerAccepts: what `iochub natsuser` prints
// goes into nats.users as it is, and the user it describes connects with
// the password it printed or the seed it wrote.
func TestNATSUserMakesUsersTheServerAccepts(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "ops.nk")
	make := func(args ...string) (natsjs.User, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"natsuser"}, args...), &out, &errb); code != 0 {
			t.Fatalf("natsuser %v: exit %d: %s", args, code, errb.String())
		}
		var users []natsjs.User
		if err := yaml.Unmarshal(out.Bytes(), &users); err != nil || len(users) != 1 {
			t.Fatalf("output is not one nats.users entry (%v):\n%s", err, out.String())
		}
		password := ""
		if _, after, ok := strings.Cut(out.String(), "kept nowhere): "); ok {
			password, _, _ = strings.Cut(after, "\n")
		}
		return users[0], password
	}
	pwUser, password := make("ops-pw", "--role", "operator")
	nkUser, _ := make("ops-nk", "--role", "operator", "--nkey", seed)
	if password == "" || pwUser.PasswordBcrypt == "" || strings.Contains(pwUser.PasswordBcrypt, password) {
		t.Fatalf("password %q, entry %+v: want a password printed once and only its hash in the entry", password, pwUser)
	}
	srv := natsjstest.RunWith(t, natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Access: natsjs.Access{Users: []natsjs.User{pwUser, nkUser}}})
	nkOpts, err := natsjs.ClientAuth{NKey: seed}.Options()
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{"password": {nats.UserInfo("ops-pw", password)}, "nkey": nkOpts} {
		nc, err := nats.Connect(srv.ClientURL(), opts...)
		if err != nil {
			t.Fatalf("%s user: %v", name, err)
		}
		nc.Close()
	}
	if sub, _ := make("yte", "--role", "subscriber", "--agency", "so-y-te"); sub.Agency != "so-y-te" {
		t.Errorf("a subscriber's entry: %+v, want agency so-y-te", sub)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"natsuser", "loops", "--role", "sensor", "--nkey", filepath.Join(t.TempDir(), "s.nk")}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "password") {
		t.Fatalf("a sensor with an NKey: exit %d, %s", code, errb.String())
	}
	if code := run(context.Background(), []string{"natsuser", "again", "--role", "operator", "--nkey", seed}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "never overwritten") {
		t.Fatalf("an existing seed file: exit %d, %s", code, errb.String())
	}
}
