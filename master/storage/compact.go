package storage

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// RunCompactor compacts etcd's history every interval, keeping one
// interval's worth of revisions (as kube-apiserver does every 5 minutes),
// until ctx ends. Several masters on one etcd may all run it.
func (s *Store) RunCompactor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := s.CurrentRevision(ctx)
		if err != nil {
			slog.Warn("etcd compaction: reading revision", "err", err)
			continue
		}
		if last > 0 {
			start := time.Now()
			_, err := s.client.Compact(ctx, last)
			s.observe("compact", time.Since(start), err)
			if err != nil && !errors.Is(err, rpctypes.ErrCompacted) && ctx.Err() == nil {
				slog.Warn("etcd compaction", "revision", last, "err", err)
			}
		}
		last = cur
	}
}
