// Command example asks a running broker for a header, calls the fake upstream through the
// RoundTripper, and has the broker proxy a call: go run ./example [broker] [upstream URL]
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	credbroker "credbroker.local/client"
)

func main() {
	target, upstream := "127.0.0.1:50051", "http://127.0.0.1:8080/pass/data/echo"
	if len(os.Args) > 2 {
		target, upstream = os.Args[1], os.Args[2]
	}
	broker, err := credbroker.Dial(target)
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	ctx := context.Background()

	auth, err := broker.Authorization(ctx, "pass", "jan", 30*time.Second) // cached until ExpiresAt - 30 s
	if err != nil {
		log.Fatal(err) // e.g. "credbroker: NotFound: no credential stored for pass/jan"
	}
	fmt.Println(auth) // values are never printed

	client := &http.Client{Transport: &credbroker.Transport{Client: broker, Provider: "pass", Subject: "jan"}}
	response, err := client.Get(upstream)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	fmt.Println(response.StatusCode, string(body))

	proxied, err := broker.ProxyCall(ctx, credbroker.ProxyRequest{Provider: "pass", Subject: "jan", Method: "GET", Path: "data/echo"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(proxied.Status, string(proxied.Body))
}
