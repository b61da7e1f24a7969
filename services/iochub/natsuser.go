package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/iochub/iochub/pkg/natsjs"
)

const natsUserUsage = `Usage:
  iochub natsuser NAME --role operator|producer|sensor|subscriber [--agency AGENCY] [--nkey SEEDFILE]
Makes a user of the embedded NATS server and prints its entry for nats.users in the
config file. With --nkey, an NKey pair: the seed goes to SEEDFILE (mode 0600; the user's
--nats-nkey), the public key to the entry. Without, a random password: printed once, only
its bcrypt hash goes to the entry. A sensor (MQTT) needs a password. A subscriber
(a partner agency's system reading its subscriptions of mode nats) names its agency.
`

// runNATSUser is `iochub natsuser`.
func runNATSUser(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iochub natsuser", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, natsUserUsage) }
	role := fs.String("role", "", "operator, producer, sensor or subscriber")
	agency := fs.String("agency", "", "a subscriber's agency (one of sharing.agencies)")
	seedFile := fs.String("nkey", "", "write an NKey seed to this file instead of making a password")
	var name string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if name == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	u := natsjs.User{Name: name, Role: *role, Agency: *agency}
	var password string
	if *seedFile != "" {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return err
		}
		seed, _ := kp.Seed()
		f, err := os.OpenFile(*seedFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("natsuser: --nkey: %w (an existing seed is never overwritten)", err)
		}
		if _, err := f.Write(append(seed, '\n')); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		u.NKey, _ = kp.PublicKey()
	} else {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		password = hex.EncodeToString(b[:])
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		u.PasswordBcrypt = string(h)
	}
	// A producer's scope and a sensor's subjects are the operator's to
	// write; check the rest now.
	check := u
	switch u.Role {
	case natsjs.RoleProducer:
		check.Sources, check.Types = []string{"/x"}, []string{"vn.ioc.*"}
	case natsjs.RoleSensor:
		check.Subjects = []string{"traffic.sensors.>"}
	}
	if err := (natsjs.Access{Users: []natsjs.User{check}}).Validate(); err != nil {
		if *seedFile != "" {
			_ = os.Remove(*seedFile)
		}
		return fmt.Errorf("natsuser: %w", err)
	}
	if password != "" {
		fmt.Fprintf(stdout, "# password (give it to the user; it is kept nowhere): %s\n", password)
	} else {
		fmt.Fprintf(stdout, "# NKey seed written to %s (the user's --nats-nkey)\n", *seedFile)
	}
	fmt.Fprintf(stdout, "- name: %s\n  role: %s\n", u.Name, u.Role)
	if u.Agency != "" {
		fmt.Fprintf(stdout, "  agency: %s\n", u.Agency)
	}
	if u.NKey != "" {
		fmt.Fprintf(stdout, "  nkey: %s\n", u.NKey)
	} else {
		fmt.Fprintf(stdout, "  password_bcrypt: %q\n", u.PasswordBcrypt)
	}
	switch u.Role {
	case natsjs.RoleProducer:
		fmt.Fprintf(stdout, "  sources: [\"/sector/system\"]   # its source prefixes\n  types: [\"vn.ioc.sector.*\"]      # the types it publishes; its client uses the inbox prefix %s\n", natsjs.ProducerInbox(u.Name))
	case natsjs.RoleSensor:
		fmt.Fprintln(stdout, "  subjects: [\"traffic.sensors.GROUP.>\"]   # MQTT topics traffic/sensors/GROUP/…")
	}
	return nil
}
