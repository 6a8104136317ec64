package master

import (
	"context"
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
		{Config{DataDir: t.TempDir(), InsecureAddress: "127.0.0.1:99999"}, "listen on 127.0.0.1:99999"},
	}
	for _, c := range cases {
		err := Run(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v) = %v, want an error mentioning %q", c.cfg, err, c.want)
		}
	}
}
