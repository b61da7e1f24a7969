package main

import (
	"testing"

	"github.com/iochub/iochub/internal/burn"
)

// burnCPU keeps every core busy until the test ends (internal/burn).
func burnCPU(t *testing.T) { burn.CPU(t) }
