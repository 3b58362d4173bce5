package flows

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
)

// restoreAt writes c to a snapshot file and restores it into a new cache at now, as the
// webhook does on start.
func restoreAt(t *testing.T, c *Cache, now time.Time) *Cache {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flows.snap")
	if err := c.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	r := New(Options{Window: 24 * time.Hour})
	s := &Snapshotter{Cache: r, Path: path, Log: testr.New(t), Now: func() time.Time { return now }}
	s.Restore()
	return r
}

func TestRestoreDropsEdgesPastTheWindow(t *testing.T) {
	c := New(Options{Window: 24 * time.Hour})
	web, cart, db := wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), wl("shop", "StatefulSet/db")
	c.Add(obs(web, cart, 8080, t0))                  // old
	c.Add(obs(cart, db, 5432, t0.Add(10*time.Hour))) // inside the window at restore
	c.Add(obs(web, db, 5432, t0.Add(2*time.Hour)))   // old
	c.Add(obs(web, db, 5432, t0.Add(20*time.Hour)))  // ... seen again: kept
	r := restoreAt(t, c, t0.Add(30*time.Hour))       // snapshot written at t0+20h, 10h down

	got := edgeSet(r)
	if len(got) != 2 {
		t.Errorf("restored edges %v, want the two seen within the window", got)
	}
	// History counts from the oldest observation held, not from the expired edge's.
	if since := r.Coverage().Since; !since.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("Since %v, want %v (the oldest first sighting of an edge kept)", since, t0.Add(2*time.Hour))
	}
}

func TestRestoreOfASnapshotOlderThanTheWindowHoldsNoHistory(t *testing.T) {
	c := New(Options{Window: 24 * time.Hour})
	c.Add(obs(wl("shop", "Deployment/web"), wl("shop", "Deployment/cart"), 8080, t0))
	now := t0.Add(30 * 24 * time.Hour)
	r := restoreAt(t, c, now)
	if cov := r.Coverage(); cov.Edges != 0 || !cov.Since.IsZero() || cov.History(now) != 0 {
		t.Errorf("coverage after restoring a month-old snapshot: %d edges, since %v, history %v; want none", cov.Edges, cov.Since, cov.History(now))
	}
}
