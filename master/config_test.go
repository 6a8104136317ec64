package master

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestRunRejectsBadConfig(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "--data-dir is required"},
		{Config{DataDir: t.TempDir(), ServiceCIDR: "10.0.0.0/40"}, "--service-cidr"},
		{Config{DataDir: t.TempDir(), NodePortRange: "3-1"}, "--service-node-port-range"},
		{Config{DataDir: t.TempDir(), SecureAddress: "127.0.0.1:99999"}, "--secure-address: listen on 127.0.0.1:99999"},
		{Config{DataDir: t.TempDir(), SecureAddress: "127.0.0.1:0", InsecureAddress: "127.0.0.1:99999"}, "--insecure-address: listen on 127.0.0.1:99999"},
		{Config{DataDir: t.TempDir(), SecureAddress: "127.0.0.1:0", AdvertiseAddress: "node-1"}, `--advertise-address "node-1" is not an IP address`},
		{Config{DataDir: t.TempDir(), SecureAddress: "127.0.0.1:0", TokenAuthFile: "/nonexistent/tokens.csv"}, "--token-auth-file: token file: open /nonexistent/tokens.csv"},
	}
	for _, c := range cases {
		err := Run(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v) = %v, want an error mentioning %q", c.cfg, err, c.want)
		}
	}
}

func TestResolveAddresses(t *testing.T) {
	detected := func() (net.IP, error) { return net.ParseIP("192.168.1.7"), nil }
	noRoute := func() (net.IP, error) { return nil, errors.New("network is unreachable") }
	cases := []struct {
		bound, advertise  string
		detect            func() (net.IP, error)
		local, advertised string
		sans              []string
	}{
		// Wildcard bind: local clients use loopback, nodes the outbound address.
		{"0.0.0.0:6443", "", detected, "https://127.0.0.1:6443", "https://192.168.1.7:6443", []string{"192.168.1.7"}},
		{"[::]:6443", "10.0.0.5", noRoute, "https://127.0.0.1:6443", "https://10.0.0.5:6443", []string{"10.0.0.5"}},
		// No route and no flag: only this machine can join.
		{"0.0.0.0:6443", "", noRoute, "https://127.0.0.1:6443", "https://127.0.0.1:6443", []string{"127.0.0.1"}},
		// A specific bind is both the local and the advertised address.
		{"10.0.0.5:7443", "", noRoute, "https://10.0.0.5:7443", "https://10.0.0.5:7443", []string{"10.0.0.5"}},
		{"[fd00::5]:6443", "", noRoute, "https://[fd00::5]:6443", "https://[fd00::5]:6443", []string{"fd00::5"}},
	}
	for _, c := range cases {
		addr, err := net.ResolveTCPAddr("tcp", c.bound)
		if err != nil {
			t.Fatal(err)
		}
		got, err := resolveAddresses(addr, c.advertise, []string{"api.example"}, c.detect)
		if err != nil {
			t.Fatalf("%s: %v", c.bound, err)
		}
		if got.local != c.local || got.advertised != c.advertised {
			t.Errorf("%s advertise %q: local %s advertised %s, want %s %s", c.bound, c.advertise, got.local, got.advertised, c.local, c.advertised)
		}
		for _, san := range append(c.sans, "api.example") {
			if !slices.Contains(got.sans, san) {
				t.Errorf("%s: SANs %v lack %s", c.bound, got.sans, san)
			}
		}
	}
}
