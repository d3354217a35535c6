// Command ferretdb is a small wrapper of ours around embeddable FerretDB
// (github.com/FerretDB/FerretDB/ferretdb) with the SQLite backend.
// It speaks the MongoDB wire protocol and is used for local development and tests.
//
// Usage:
//
//	ferretdb [-listen-addr 127.0.0.1:27017] [-data-dir ./.ferretdb-data] [-log-level warn]
//
// When the listener is bound, one line "ferretdb listening on HOST:PORT" is
// printed to stderr (with the actual port, so -listen-addr 127.0.0.1:0 works).
// SIGINT/SIGTERM shut it down cleanly (exit code 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (host:port; port 0 picks a free port)")
	dataDir := flag.String("data-dir", "./.ferretdb-data", "directory for SQLite database files (created if missing)")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	flag.Parse()

	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "ferretdb: unexpected arguments: %v\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: invalid -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: invalid -data-dir %q: %v\n", *dataDir, err)
		os.Exit(1)
	}
	if err = os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: cannot create -data-dir: %v\n", err)
		os.Exit(1)
	}

	// SQLite URI must be a directory ending with "/".
	sqliteURL := "file:" + strings.TrimSuffix(filepath.ToSlash(dir), "/") + "/"

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The TCP listener is already bound by New, so MongoDBURI does not block here.
	addr := *listenAddr
	if mu, err := url.Parse(f.MongoDBURI()); err == nil && mu.Host != "" {
		addr = mu.Host
	}
	fmt.Fprintf(os.Stderr, "ferretdb listening on %s\n", addr)

	if err = f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}
