package ebpf

import (
	"testing"
	"time"
)

func TestNATExpired(t *testing.T) {
	now := 10 * time.Hour
	at := func(ago time.Duration) uint64 { return uint64(now - ago) }
	for _, c := range []struct {
		name    string
		proto   uint8
		closing uint8
		ago     time.Duration
		want    bool
	}{
		{"open TCP, idle an hour", 6, 0, time.Hour, false},
		{"open TCP, idle three hours", 6, 0, 3 * time.Hour, true},
		{"closed TCP in TIME_WAIT", 6, 1, 30 * time.Second, false},
		{"closed TCP after TIME_WAIT", 6, 1, 70 * time.Second, true},
		{"UDP, recent", 17, 0, 10 * time.Second, false},
		{"UDP, idle", 17, 0, 2 * time.Minute, true},
	} {
		k := SNATKey{Proto: c.proto}
		v := SNATValue{LastNs: at(c.ago), Closing: c.closing}
		if got := natExpired(k, v, now); got != c.want {
			t.Errorf("%s: expired %v, want %v", c.name, got, c.want)
		}
	}
}
