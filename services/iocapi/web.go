package iocapi

import "embed"

// webFS is the dashboard: plain HTML, CSS and JavaScript with no external
// asset, so it works in a closed data centre.
//
//go:embed web
var webFS embed.FS
