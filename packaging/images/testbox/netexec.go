package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/hoist-project/hoist/packaging/images/testbox/internal/netexec"
)

// netexecCmd runs the netexec HTTP API and its UDP twin.
func netexecCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("netexec", flag.ContinueOnError)
	httpPort := fs.Int("http-port", 8080, "HTTP port")
	udpPort := fs.Int("udp-port", 8081, "UDP port (0 disables the UDP server)")
	shell := fs.Bool("enable-shell", false, "allow /shell?cmd= to run commands")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	if *udpPort != 0 {
		conn, err := net.ListenPacket("udp", fmt.Sprintf(":%d", *udpPort))
		if err != nil {
			return err
		}
		defer conn.Close()
		go func() {
			if err := netexec.ServeUDP(conn, host); err != nil {
				fmt.Fprintln(os.Stderr, "testbox netexec: udp:", err)
			}
		}()
	}
	return serveHTTP(ctx, *httpPort, netexec.NewHandler(netexec.Config{
		Hostname:    host,
		EnableShell: *shell,
		Exit:        os.Exit,
	}))
}
