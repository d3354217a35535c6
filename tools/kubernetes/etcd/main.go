// Command etcd is the etcd server (go.etcd.io/etcd/server/v3) that the local
// cluster's API server stores its state in (scripts/cluster.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
