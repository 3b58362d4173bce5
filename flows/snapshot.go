package flows

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/netpol-guard/netpol-guard/evaluator"
)

// The snapshot format: a magic string and a version, then varint-encoded coverage, peers
// and edges (least recently touched first), then a CRC-32 of everything before it. A
// reader refuses any other version, a bad checksum, or a count that the data cannot hold.
// Version 2 added each peer's prefix length (PeerID.Bits) after its address; a version 1
// snapshot, without it, is read as single addresses.
const (
	snapshotMagic     = "NPGFLOWS"
	snapshotVersion   = 2
	snapshotVersionV1 = 1
	// Bounds a corrupt snapshot cannot talk the reader past.
	maxSnapshotString = 1 << 16
	maxSnapshotItems  = 1 << 28
)

// ErrSnapshotCorrupt is returned for a snapshot that is truncated, altered or not one.
var ErrSnapshotCorrupt = errors.New("flow cache snapshot is corrupt")

type snapEdge struct {
	src, dst    uint32
	port        uint16
	proto       uint8
	first, last int64
	count       uint64
}

// WriteSnapshot writes the cache to w. The cache is copied under a read lock — a compact
// copy, not the encoding — so ingest waits only for the copy.
func (c *Cache) WriteSnapshot(w io.Writer) error {
	c.mu.RLock()
	cov := Coverage{Since: c.since, Unresolved: c.unresolved, Evicted: c.evicted, Expired: c.expired, Sources: make(map[string]time.Time, len(c.sources))}
	for k, v := range c.sources {
		cov.Sources[k] = v
	}
	seq := make(map[uint32]uint32, len(c.peerIndex))
	peers := make([]peer, 0, len(c.peerIndex))
	for i := range c.peers {
		if c.peers[i].live {
			seq[uint32(i)] = uint32(len(peers))
			peers = append(peers, peer{id: c.peers[i].id, info: c.peers[i].info})
		}
	}
	edges := make([]snapEdge, 0, c.live)
	for i := c.tail; i != none; i = c.edges[i].prev {
		e := &c.edges[i]
		edges = append(edges, snapEdge{src: seq[e.key.src], dst: seq[e.key.dst], port: e.key.port, proto: e.key.proto, first: e.first, last: e.last, count: e.count})
	}
	c.mu.RUnlock()

	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<16)
	enc := &encoder{w: bw}
	enc.raw([]byte(snapshotMagic))
	enc.uvarint(snapshotVersion)
	enc.varint(cov.Since.UnixNano())
	enc.uvarint(cov.Unresolved)
	enc.uvarint(cov.Evicted)
	enc.uvarint(cov.Expired)
	enc.uvarint(uint64(len(cov.Sources)))
	for name, t := range cov.Sources {
		enc.str(name)
		enc.varint(t.UnixNano())
	}
	enc.uvarint(uint64(len(peers)))
	for _, p := range peers {
		enc.uvarint(uint64(p.id.Kind))
		enc.str(p.id.Namespace)
		enc.str(p.id.Name)
		ip, _ := p.id.IP.MarshalBinary()
		enc.bytes(ip)
		enc.uvarint(uint64(p.id.Bits))
		if p.info == nil {
			enc.uvarint(0)
			continue
		}
		enc.uvarint(1)
		enc.uvarint(uint64(len(p.info.Labels)))
		for k, v := range p.info.Labels {
			enc.str(k)
			enc.str(v)
		}
		enc.uvarint(uint64(len(p.info.Ports)))
		for _, cp := range p.info.Ports {
			enc.str(cp.Name)
			enc.uvarint(uint64(cp.Port))
			enc.str(string(cp.Protocol))
		}
	}
	enc.uvarint(uint64(len(edges)))
	for _, e := range edges {
		enc.uvarint(uint64(e.src))
		enc.uvarint(uint64(e.dst))
		enc.uvarint(uint64(e.port))
		enc.uvarint(uint64(e.proto))
		enc.varint(e.first)
		enc.varint(e.last - e.first)
		enc.uvarint(e.count)
	}
	if enc.err != nil {
		return enc.err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	_, err := w.Write(sum[:])
	return err
}

// ReadSnapshot replaces the cache's contents with a snapshot, every edge of it however old.
// On any error the cache is left as it was. Edges past the cap are dropped, least recently
// touched first.
func (c *Cache) ReadSnapshot(r io.Reader) error {
	return c.readSnapshot(r, time.Time{})
}

// ReadSnapshotAt is ReadSnapshot at time now: edges last seen before now minus the window
// are not restored (and are counted as expired), as expiry would have dropped them had the
// cache been running. Coverage.Since is then the first sighting of the oldest edge kept —
// none when none is — so the time the webhook was down does not pass for observed history.
func (c *Cache) ReadSnapshotAt(r io.Reader, now time.Time) error {
	return c.readSnapshot(r, now)
}

func (c *Cache) readSnapshot(r io.Reader, now time.Time) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading flow cache snapshot: %w", err)
	}
	if len(data) < len(snapshotMagic)+4 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: not a flow cache snapshot", ErrSnapshotCorrupt)
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrSnapshotCorrupt)
	}
	d := &decoder{b: body[len(snapshotMagic):]}
	version := d.uvarint()
	if d.err == nil && version != snapshotVersion && version != snapshotVersionV1 {
		return fmt.Errorf("flow cache snapshot version %d is not supported (this build reads versions %d and %d)", version, snapshotVersionV1, snapshotVersion)
	}
	since := time.Unix(0, d.varint())
	unresolved, evicted, expired := d.uvarint(), d.uvarint(), d.uvarint()
	sources := map[string]time.Time{}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		name := d.str()
		sources[name] = time.Unix(0, d.varint())
	}
	np := d.count()
	ids := make([]PeerID, 0, min(np, 1<<16))
	infos := make([]*PeerInfo, 0, min(np, 1<<16))
	for ; np > 0 && d.err == nil; np-- {
		id := PeerID{Kind: PeerKind(d.uvarint()), Namespace: d.str(), Name: d.str()}
		if err := id.IP.UnmarshalBinary(d.bytes()); err != nil && d.err == nil {
			d.err = err
		}
		if version >= 2 {
			if bits := d.uvarint(); bits != 0 && d.err == nil {
				id.Bits = uint8(min(bits, 255))
				if p, err := id.IP.Prefix(int(bits)); id.Kind != PeerExternal || err != nil || bits >= uint64(id.IP.BitLen()) || p.Addr() != id.IP {
					d.err = fmt.Errorf("peer %s: not a network", id)
				}
			}
		}
		var info *PeerInfo
		if d.uvarint() == 1 {
			info = &PeerInfo{}
			if nl := d.count(); nl > 0 {
				info.Labels = make(map[string]string, min(nl, 64))
				for ; nl > 0 && d.err == nil; nl-- {
					k := d.str()
					info.Labels[k] = d.str()
				}
			}
			for n := d.count(); n > 0 && d.err == nil; n-- {
				info.Ports = append(info.Ports, evaluator.ContainerPort{Name: d.str(), Port: int32(d.uvarint()), Protocol: corev1.Protocol(d.str())})
			}
		}
		ids = append(ids, id)
		infos = append(infos, info)
	}
	ne := d.count()
	ne0 := ne
	edges := make([]snapEdge, 0, min(ne, 1<<20))
	for ; ne > 0 && d.err == nil; ne-- {
		e := snapEdge{}
		src, dst := d.uvarint(), d.uvarint()
		port, proto := d.uvarint(), d.uvarint()
		e.first = d.varint()
		e.last = e.first + d.varint()
		e.count = d.uvarint()
		if d.err == nil && (src >= uint64(len(ids)) || dst >= uint64(len(ids)) || port < 1 || port > math.MaxUint16 || proto < 1 || proto >= uint64(len(protocols))) {
			d.err = errors.New("edge out of range")
		}
		e.src, e.dst, e.port, e.proto = uint32(src), uint32(dst), uint16(port), uint8(proto)
		edges = append(edges, e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing data")
	}
	if d.err != nil {
		return fmt.Errorf("%w: %v", ErrSnapshotCorrupt, d.err)
	}

	dropped := 0
	if !now.IsZero() {
		cutoff := now.Add(-c.window).Unix()
		edges = slices.DeleteFunc(edges, func(e snapEdge) bool { return e.last < cutoff })
		dropped = ne0 - len(edges)
	}
	if dropped > 0 {
		since = time.Time{} // the edges kept say how far back history reaches
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset(since)
	c.unresolved, c.evicted, c.expired = unresolved, evicted, expired+uint64(dropped)
	for k, v := range sources {
		if len(c.sources) < maxSources {
			c.sources[k] = v
		}
	}
	for _, e := range edges {
		i := c.add(&Observation{
			Src: ids[e.src], SrcInfo: infos[e.src], Dst: ids[e.dst], DstInfo: infos[e.dst],
			Port: int32(e.port), Protocol: protocols[e.proto], Seen: time.Unix(e.first, 0), Count: e.count,
		})
		if i != none {
			c.edges[i].last = max(c.edges[i].last, e.last)
		}
	}
	return nil
}

// SaveFile writes a snapshot to path atomically: to a temporary file beside it, synced,
// then renamed over it.
func (c *Cache) SaveFile(path string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing flow cache snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing left to remove
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := c.WriteSnapshot(bw); err != nil {
		tmp.Close()
		return fmt.Errorf("writing flow cache snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing flow cache snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing flow cache snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing flow cache snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing flow cache snapshot: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadFile restores the cache from a snapshot file. A missing file is not an error (the
// cache starts empty, found is false); a corrupt one is, and leaves the cache as it was.
func (c *Cache) LoadFile(path string) (found bool, err error) {
	return c.loadFile(path, time.Time{})
}

// LoadFileAt is LoadFile at time now, dropping what is past the window (ReadSnapshotAt).
func (c *Cache) LoadFileAt(path string, now time.Time) (found bool, err error) {
	return c.loadFile(path, now)
}

func (c *Cache) loadFile(path string, now time.Time) (found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening flow cache snapshot: %w", err)
	}
	defer f.Close()
	if err := c.readSnapshot(bufio.NewReaderSize(f, 1<<20), now); err != nil {
		return true, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// Snapshotter keeps a cache on disk: it restores it on start, then every interval expires
// what is past the window and writes a snapshot, and writes a last one on shutdown. It is a
// controller-runtime Runnable.
type Snapshotter struct {
	Cache    *Cache
	Path     string        // empty: no snapshots, expiry only
	Interval time.Duration // default 1m
	Log      logr.Logger
	// Loaded is closed once the snapshot has been restored (or found missing or corrupt).
	Loaded chan struct{}
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Restore loads the snapshot, if any, without the edges that have passed the window while
// the webhook was down (LoadFileAt). A missing or corrupt snapshot is logged and the cache
// starts empty: losing history must never stop the webhook.
func (s *Snapshotter) Restore() {
	defer s.markLoaded()
	if s.Path == "" {
		return
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	found, err := s.Cache.LoadFileAt(s.Path, now())
	switch {
	case err != nil:
		s.Log.Error(err, "Flow cache snapshot unreadable, starting empty", "path", s.Path)
	case !found:
		s.Log.Info("No flow cache snapshot, starting empty", "path", s.Path)
	default:
		cov := s.Cache.Coverage()
		s.Log.Info("Flow cache snapshot restored", "path", s.Path, "cacheEdges", cov.Edges, "since", cov.Since)
	}
}

func (s *Snapshotter) markLoaded() {
	if s.Loaded != nil {
		select {
		case <-s.Loaded:
		default:
			close(s.Loaded)
		}
	}
}

// Start runs until ctx is done, then writes a final snapshot.
func (s *Snapshotter) Start(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Cache.Expire(now())
			s.save("Flow cache snapshot written on shutdown")
			return nil
		case <-t.C:
			if n := s.Cache.Expire(now()); n > 0 {
				s.Log.V(1).Info("Flow cache edges expired", "expired", n)
			}
			s.save("Flow cache snapshot written")
		}
	}
}

func (s *Snapshotter) save(msg string) {
	if s.Path == "" {
		return
	}
	start := time.Now()
	if err := s.Cache.SaveFile(s.Path); err != nil {
		s.Log.Error(err, "Flow cache snapshot failed", "path", s.Path)
		return
	}
	s.Log.V(1).Info(msg, "path", s.Path, "cacheEdges", s.Cache.Len(), "duration", time.Since(start))
}

type encoder struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
	err error
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
func (e *encoder) uvarint(v uint64) { e.raw(e.buf[:binary.PutUvarint(e.buf[:], v)]) }
func (e *encoder) varint(v int64)   { e.raw(e.buf[:binary.PutVarint(e.buf[:], v)]) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.raw(b) }
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }
func (d *decoder) varint() int64   { return readVarint(d, binary.Varint) }

// readVarint reads one number with read (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items, refusing counts the remaining data cannot hold.
func (d *decoder) count() int {
	n := d.uvarint()
	if d.err == nil && (n > maxSnapshotItems || n > uint64(len(d.b))) {
		d.err = fmt.Errorf("count %d exceeds the data", n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err == nil && (n > maxSnapshotString || n > uint64(len(d.b))) {
		d.err = errors.New("length exceeds the data")
	}
	if d.err != nil {
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }
