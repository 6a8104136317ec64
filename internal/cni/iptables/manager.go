package iptables

import "fmt"

// Manager owns chains with given prefixes in one table.
type Manager struct {
	Runner   Runner
	Table    string
	Prefixes []string
}

// Ensure writes all chains of owner in one batch.
func (m Manager) Ensure(f Family, owner Owner, chains []Chain) error {
	data, err := m.Runner.Save(f, m.Table)
	if err != nil {
		return err
	}
	cur := ParseSave(data)
	b := NewBatch(m.Table)
	for _, c := range chains {
		b.Ensure(cur, c, owner.Tag())
	}
	return m.Runner.Restore(f, b.Bytes())
}

// Add writes owner's chains in one batch without reading the table first:
// one exec instead of two and independent of how many chains exist. Use it
// on ADD, where the attachment is new; if its chains did exist (a repeated
// ADD), they are replaced and a duplicate jump may remain, which is harmless
// (the chain's first match ends the traversal) and DEL/GC remove every jump.
func (m Manager) Add(f Family, owner Owner, chains []Chain) error {
	b := NewBatch(m.Table)
	empty := &Table{Chains: map[string]bool{}}
	for _, c := range chains {
		b.Ensure(empty, c, owner.Tag())
	}
	return m.Runner.Restore(f, b.Bytes())
}

// Remove deletes owner's chains (one per prefix) and their jumps; absent ones are skipped.
func (m Manager) Remove(f Family, owner Owner) error {
	data, err := m.Runner.Save(f, m.Table)
	if err != nil {
		return err
	}
	cur := ParseSave(data)
	b := NewBatch(m.Table)
	for _, p := range m.Prefixes {
		b.Remove(cur, owner.ChainName(p))
	}
	if b.Empty() {
		return nil
	}
	return m.Runner.Restore(f, b.Bytes())
}

// RemoveKnown deletes chains that Add created with exactly these jumps in one
// restore, without reading the table; if that batch fails (something is
// already gone or differs) it falls back to Remove, which reads the table.
func (m Manager) RemoveKnown(f Family, owner Owner, chains []Chain) error {
	b := NewBatch(m.Table)
	for _, c := range chains {
		b.removeKnown(c, owner.Tag())
	}
	if err := m.Runner.Restore(f, b.Bytes()); err == nil {
		return nil
	}
	return m.Remove(f, owner)
}

// GC removes the chains of plugin's attachments on network for which keep
// is false, plus unreferenced chains with our prefixes, in one batch, and
// returns the removed chain names.
func (m Manager) GC(f Family, plugin, network string, keep func(Owner) bool) ([]string, error) {
	data, err := m.Runner.Save(f, m.Table)
	if err != nil {
		return nil, err
	}
	cur := ParseSave(data)
	b := NewBatch(m.Table)
	var removed []string
	for _, p := range m.Prefixes {
		for chain, tag := range cur.Owners(p) {
			if tag != "" {
				o, ok := ParseOwner(tag)
				if !ok || o.Plugin != plugin || o.Network != network || keep(o) {
					continue
				}
			}
			b.Remove(cur, chain)
			removed = append(removed, chain)
		}
	}
	if b.Empty() {
		return nil, nil
	}
	if err := m.Runner.Restore(f, b.Bytes()); err != nil {
		return nil, fmt.Errorf("gc %s chains: %w", m.Table, err)
	}
	return removed, nil
}
