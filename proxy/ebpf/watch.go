package ebpf

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// resubscribeDelay spaces new netlink subscriptions after one failed.
const resubscribeDelay = time.Second

// linkWatch follows the links and IPv4 addresses of the proxy's network
// namespace, so an interface created after start (flanneld's flannel.1,
// a new uplink) gets the NodePort programs at once and a removed one loses
// its pins, instead of both waiting for the next full sync.
type linkWatch struct {
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// stop ends the watch and waits for it; safe to call more than once.
func (w *linkWatch) stop() {
	if w == nil {
		return
	}
	w.stopOnce.Do(func() { close(w.quit) })
	<-w.done
}

func (p *Proxier) startWatch() (*linkWatch, error) {
	ns := netns.None()
	if p.cfg.NetnsPath != "" {
		h, err := netns.GetFromPath(p.cfg.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("ebpf: watch interfaces: open netns %s: %w", p.cfg.NetnsPath, err)
		}
		ns = h
	}
	log := p.cfg.Log
	if log == nil {
		log = slog.Default()
	}
	w := &linkWatch{quit: make(chan struct{}), done: make(chan struct{})}
	sub, err := subscribe(ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	go func() {
		defer close(w.done)
		defer ns.Close()
		for {
			// Changes made before this subscription existed are caught by
			// the reconcile right after it.
			p.reconcileInterfaces(log)
			err := sub.follow(w.quit, func() { p.reconcileInterfaces(log) })
			sub.close()
			if err == nil {
				return
			}
			log.Warn("ebpf proxy: interface watch interrupted; subscribing again", "err", err)
			for {
				select {
				case <-w.quit:
					return
				case <-time.After(resubscribeDelay):
				}
				if sub, err = subscribe(ns); err == nil {
					break
				}
				log.Warn("ebpf proxy: subscribing to interface changes", "err", err)
			}
		}
	}()
	return w, nil
}

// subscription is one pair of netlink subscriptions (links, addresses).
type subscription struct {
	links  chan netlink.LinkUpdate
	addrs  chan netlink.AddrUpdate
	cancel chan struct{}
}

func subscribe(ns netns.NsHandle) (*subscription, error) {
	s := &subscription{links: make(chan netlink.LinkUpdate, 64), addrs: make(chan netlink.AddrUpdate, 64), cancel: make(chan struct{})}
	var nsp *netns.NsHandle
	if ns.IsOpen() {
		nsp = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(s.links, s.cancel, netlink.LinkSubscribeOptions{Namespace: nsp}); err != nil {
		close(s.cancel)
		return nil, fmt.Errorf("ebpf: subscribe to link changes: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(s.addrs, s.cancel, netlink.AddrSubscribeOptions{Namespace: nsp}); err != nil {
		close(s.cancel)
		return nil, fmt.Errorf("ebpf: subscribe to address changes: %w", err)
	}
	return s, nil
}

// close cancels both subscriptions and drains their channels until netlink
// closes them, so its receiving goroutines never block on a full channel.
func (s *subscription) close() {
	close(s.cancel)
	go func() {
		for range s.links {
		}
	}()
	go func() {
		for range s.addrs {
		}
	}()
}

// follow calls changed after every burst of link or address updates until
// quit closes (nil) or a subscription ends (netlink closes its channel on
// a receive error such as an overflowed socket buffer).
func (s *subscription) follow(quit <-chan struct{}, changed func()) error {
	for {
		if got, err := s.recv(quit); !got || err != nil {
			return err
		}
		// Coalesce what is already queued: one reconcile per burst.
		for len(s.links)+len(s.addrs) > 0 {
			if got, err := s.recv(quit); !got || err != nil {
				return err
			}
		}
		changed()
	}
}

// recv waits for one link or address update; got is false when quit
// closed first.
func (s *subscription) recv(quit <-chan struct{}) (got bool, err error) {
	select {
	case <-quit:
		return false, nil
	case _, ok := <-s.links:
		if !ok {
			return false, errors.New("link subscription ended")
		}
	case _, ok := <-s.addrs:
		if !ok {
			return false, errors.New("address subscription ended")
		}
	}
	return true, nil
}

// reconcileInterfaces attaches the NodePort programs to selected
// interfaces that lack them and unpins those of interfaces gone or no
// longer selected; links already in place are not touched. When the node
// addresses come from the interfaces and changed, the last synced state
// is rendered again so NodePorts answer on a new address at once.
func (p *Proxier) reconcileInterfaces(log *slog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.attachTC(false); err != nil {
		log.Error("ebpf proxy: attach NodePort programs after an interface change", "err", err)
		return
	}
	if len(p.cfg.NodePortAddresses) != 0 || p.state == nil {
		return
	}
	_, addrs, err := p.interfaces()
	if err != nil {
		log.Error("ebpf proxy: read node addresses", "err", err)
		return
	}
	if slices.Equal(addrs, p.nodeAddrs) {
		return
	}
	if _, _, err := p.apply(*p.state, addrs); err != nil {
		log.Error("ebpf proxy: apply new node addresses", "err", err)
	}
}
