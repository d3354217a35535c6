//go:build tools

// Package tools pins the Jaeger UI assets next to the Jaeger they are served by.
//
// A Jaeger built from the Go module proxy has no UI (its release builds embed
// a separately built jaeger-ui web app). The module imported below carries a
// production build of Jaeger UI (v1.68.0) under public/, every file gzipped.
// The blank import keeps the module in go.mod and its hash in go.sum (the
// "tools" build tag means nothing here is ever compiled);
// scripts/build-tools.sh jaeger unpacks public/ into .tools/jaeger-ui.
package tools

import _ "github.com/tonistiigi/jaeger-ui-rest"
