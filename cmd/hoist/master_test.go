package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestMasterDurationFlagsRefused checks that bad node-lifecycle durations
// are usage errors naming the flag, before anything starts.
func TestMasterDurationFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-monitor-grace-period", "soon"}, `invalid value "soon" for flag -node-monitor-grace-period`},
		{[]string{"--node-monitor-grace-period", "0s"}, "--node-monitor-grace-period must be positive, got 0s"},
		{[]string{"--node-monitor-period", "-1s"}, "--node-monitor-period must be positive, got -1s"},
		{[]string{"--pod-eviction-timeout", "5"}, `invalid value "5" for flag -pod-eviction-timeout`},
	} {
		err := runMaster(context.Background(), append([]string{"--data-dir", t.TempDir()}, tc.args...))
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(strings.SplitN(err.Error(), "\n", 2)[0], tc.want) {
			t.Errorf("%v: got %v, want a usage error whose first line contains %q", tc.args, err, tc.want)
		}
	}
}
