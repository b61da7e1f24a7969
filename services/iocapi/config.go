package iocapi

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// Roles a reader can have: a sector (sees that sector's KPIs) or leader
// (sees all).
var Roles = []string{"leader", "publicservice", "feedback", "health", "education", "traffic"}

// Config is the iocapi part of the config file.
type Config struct {
	Readers []Reader `yaml:"readers"`
	// Timezone buckets days and months (default Asia/Ho_Chi_Minh).
	Timezone string `yaml:"timezone"`
}

// Reader is one bearer token allowed to read KPIs. Only the token's SHA-256
// is stored.
type Reader struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	Role        string `yaml:"role"`
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Defaults fills what was left out.
func (c *Config) Defaults() {
	if c.Timezone == "" {
		c.Timezone = "Asia/Ho_Chi_Minh"
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
