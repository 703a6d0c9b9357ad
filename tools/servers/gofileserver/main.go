// A minimal Go net/http static file server, for the conformance matrix.
// Usage: gofileserver -addr 127.0.0.1:8080 -root DIR
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address (host:port)")
	root := flag.String("root", ".", "document root to serve")
	flag.Parse()
	log.Fatal(http.ListenAndServe(*addr, http.FileServer(http.Dir(*root))))
}
