package ebpf

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Idle times after which the tc program takes a NAT port over, as in
// bpf/proxy.c; the proxier deletes such entries so the map holds only
// flows that may still send.
const (
	natIdleClosed = 65 * time.Second // TCP after FIN/RST: the backend's TIME_WAIT
	natIdleUDP    = 60 * time.Second
	natIdleTCP    = 2 * time.Hour
	// natPruneInterval spaces the proxier's walks over the SNAT map (the
	// kernel side takes expired ports over by itself).
	natPruneInterval = 30 * time.Second
)

// natExpired reports whether the SNAT entry v, last used at v.LastNs on
// the monotonic clock, is idle beyond its protocol's time at now.
func natExpired(k SNATKey, v SNATValue, now time.Duration) bool {
	idle := natIdleTCP
	switch {
	case v.Closing != 0:
		idle = natIdleClosed
	case k.Proto == unix.IPPROTO_UDP:
		idle = natIdleUDP
	}
	return now-time.Duration(v.LastNs) > idle
}

// pruneNAT deletes expired SNAT entries (the LRU map would keep them
// until it is full) and returns how many remain.
func (p *Proxier) pruneNAT() (int, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil { // bpf_ktime_get_ns's clock
		return 0, fmt.Errorf("ebpf: monotonic clock: %w", err)
	}
	now := time.Duration(ts.Nano())
	var expired []SNATKey
	var k SNATKey
	var v SNATValue
	live := 0
	it := p.objs.HoistNpSnat.Iterate()
	for it.Next(&k, &v) {
		if natExpired(k, v, now) {
			expired = append(expired, k)
		} else {
			live++
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("ebpf: read NodePort SNAT map: %w", err)
	}
	for _, k := range expired {
		if err := p.objs.HoistNpSnat.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0, fmt.Errorf("ebpf: delete NodePort SNAT entry: %w", err)
		}
	}
	return live, nil
}
