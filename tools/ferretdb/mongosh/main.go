// Command mongosh is a stand-in for the one use the compose file makes of MongoDB's shell:
// the database container's healthcheck,
//
//	mongosh --quiet --eval "db.adminCommand('ping').ok"
//
// The `mongo:7.0` image carries the real mongosh; the local FerretDB image that stands in
// for it (deploy/local-images, no registry reachable here) carries this program instead,
// so docker-compose.yml's healthcheck runs unchanged against both. It sends a real `ping`
// over the wire protocol to mongodb://127.0.0.1:27017 (or --host/--port, or a URI as the
// first argument), prints the reply's `ok` (1) and exits 0; on any failure it prints why
// and exits 1. Any other --eval expression is refused (exit 2): this is not a shell.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// The only expression understood, with or without spaces and either quote style.
var pingExpressions = []string{
	"db.adminCommand('ping').ok",
	`db.adminCommand("ping").ok`,
	"db.adminCommand({ping:1}).ok",
	"db.adminCommand({ping: 1}).ok",
}

func main() {
	eval := flag.String("eval", "", "the expression to evaluate (only the ping of the healthcheck)")
	host := flag.String("host", "127.0.0.1", "server host")
	port := flag.Int("port", 27017, "server port")
	flag.Bool("quiet", false, "accepted for compatibility; this program prints only the result")
	flag.Parse()

	if !isPing(*eval) {
		fmt.Fprintf(os.Stderr, "mongosh (stand-in): only --eval \"db.adminCommand('ping').ok\" is supported, got %q\n", *eval)
		os.Exit(2)
	}
	uri := fmt.Sprintf("mongodb://%s:%d/?directConnection=true", *host, *port)
	if flag.NArg() > 0 {
		uri = flag.Arg(0)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri).SetServerSelectionTimeout(2*time.Second))
	if err != nil {
		fmt.Fprintf(os.Stderr, "mongosh (stand-in): cannot connect to %s: %v\n", uri, err)
		os.Exit(1)
	}
	defer client.Disconnect(context.Background())

	var reply bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Decode(&reply); err != nil {
		fmt.Fprintf(os.Stderr, "mongosh (stand-in): ping failed: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(reply["ok"])
}

func isPing(expr string) bool {
	compact := strings.ReplaceAll(strings.TrimSpace(expr), " ", "")
	for _, p := range pingExpressions {
		if compact == strings.ReplaceAll(p, " ", "") {
			return true
		}
	}
	return false
}
