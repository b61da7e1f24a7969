package iocapi

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Roles a reader can have: a sector (sees that sector's KPIs) or leader
// (sees all).
var Roles = []string{"leader", "publicservice", "feedback", "health", "education", "traffic"}

// Config is the iocapi part of the config file.
type Config struct {
	Readers []Reader `yaml:"readers"`
	// Timezone buckets days and months (default Asia/Ho_Chi_Minh); it is
	// parsed once, when the file is read.
	Timezone Timezone `yaml:"timezone"`
}

// DefaultTimezone is the IOC's time zone when the file names none.
const DefaultTimezone = "Asia/Ho_Chi_Minh"

// Timezone is an IANA time zone, parsed when it is read.
type Timezone struct{ *time.Location }

// ParseTimezone parses an IANA name such as Asia/Ho_Chi_Minh.
func ParseTimezone(name string) (Timezone, error) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return Timezone{}, fmt.Errorf("time zone %q: %w", name, err)
	}
	return Timezone{loc}, nil
}

// UnmarshalText reads the zone from the config file.
func (z *Timezone) UnmarshalText(b []byte) error {
	tz, err := ParseTimezone(string(b))
	if err != nil {
		return fmt.Errorf("iocapi.timezone: %w", err)
	}
	*z = tz
	return nil
}

// MarshalText writes the zone's name.
func (z Timezone) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// Loc is the zone, UTC when unset.
func (z Timezone) Loc() *time.Location {
	if z.Location == nil {
		return time.UTC
	}
	return z.Location
}

// DefaultConfig is the iocapi configuration when the file sets nothing.
func DefaultConfig() Config {
	tz, err := ParseTimezone(DefaultTimezone)
	if err != nil { // a machine without a zone database (the iochub binary embeds one)
		tz = Timezone{time.UTC}
	}
	return Config{Timezone: tz}
}

// Reader is one bearer token allowed to read KPIs. Only the token's SHA-256
// is stored.
type Reader struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	Role        string `yaml:"role"`
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Defaults fills what was left out from DefaultConfig.
func (c *Config) Defaults() {
	if c.Timezone.Location == nil {
		c.Timezone = DefaultConfig().Timezone
	}
}

// Validate names every problem of the readers list.
func (c *Config) Validate() error {
	var errs []error
	for i, r := range c.Readers {
		where := fmt.Sprintf("iocapi.readers[%d] (%s)", i, r.Name)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		if !hexRE.MatchString(r.TokenSHA256) {
			errs = append(errs, fmt.Errorf("%s: token_sha256 must be 64 lower-case hex digits (sha256sum of the token)", where))
		}
		if !slices.Contains(Roles, r.Role) {
			errs = append(errs, fmt.Errorf("%s: role %q: want one of %v", where, r.Role, Roles))
		}
	}
	return errors.Join(errs...)
}

// Sees reports whether the reader may read KPIs of sector.
func (r *Reader) Sees(sector string) bool { return r.Role == "leader" || r.Role == sector }
