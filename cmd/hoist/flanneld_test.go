package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNetworkFlagsRefused checks that bad flag combinations of flanneld and
// up are refused with a usage error before anything starts.
func TestNetworkFlagsRefused(t *testing.T) {
	badConf := filepath.Join(t.TempDir(), "net-conf.json")
	if err := os.WriteFile(badConf, []byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		run   func(context.Context, []string) error
		args  []string
		want  string
		usage bool
	}{
		{runFlanneld, []string{"--subnet-mgr", "consul"}, `--subnet-mgr "consul" is not available: use etcd or kube`, true},
		{runFlanneld, []string{"--subnet-mgr", "kube", "--kubeconfig", "k"}, "--subnet-mgr kube needs --node-name", true},
		{runFlanneld, []string{"--subnet-mgr", "kube", "--node-name", "n1"}, "--subnet-mgr kube needs --kubeconfig", true},
		{runFlanneld, []string{"--cluster-cidr", "10.1.0.0/16"}, "are kube-mode flags: add --subnet-mgr kube", true},
		{runFlanneld, []string{"--subnet-mgr", "kube", "--node-name", "n1", "--net-conf", badConf, "--backend", "vxlan"}, "--net-conf and --cluster-cidr", true},
		{runFlanneld, []string{"--subnet-mgr", "kube", "--node-name", "n1", "--backend", "udp"}, `Backend.Type "udp" is not supported`, true},
		{runFlanneld, []string{"--subnet-mgr", "kube", "--node-name", "n1", "--kubeconfig", "k", "--net-conf", badConf}, badConf + `: network config: Backend.Type "udp"`, false},
		{runUp, []string{"--data-dir", "d", "--pod-cidr", "10.244.0.0/24"}, "--pod-cidr is gone", true},
		{runUp, []string{"--data-dir", "d", "--proxy-mode", "ipvs"}, `--proxy-mode "ipvs": use iptables or ebpf`, true},
		{runUp, []string{"--data-dir", "d", "--public-ip", "x"}, `--public-ip "x" is not an IPv4 address`, true},
	} {
		err := tc.run(context.Background(), tc.args)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("%v: got %v (usage error: %v), want %q (usage error: %v)", tc.args, err, errors.As(err, &ue), tc.want, tc.usage)
		}
	}
}
