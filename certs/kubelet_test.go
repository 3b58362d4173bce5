package certs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// kubeletVolume updates a directory the way the kubelet's AtomicWriter updates a Secret
// volume: the files go into a new timestamped directory, a ..data_tmp symlink to it is
// renamed over ..data (the atomic step), the user-visible names are symlinks into ..data
// (created once), and the previous timestamped directory is removed.
type kubeletVolume struct {
	t   *testing.T
	dir string
}

func newKubeletVolume(t *testing.T) *kubeletVolume {
	return &kubeletVolume{t: t, dir: t.TempDir()}
}

func (v *kubeletVolume) write(files map[string][]byte) {
	v.t.Helper()
	ts, err := os.MkdirTemp(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		v.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	data := filepath.Join(v.dir, dataDir)
	old, _ := os.Readlink(data)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, data); err != nil {
		v.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join(dataDir, name), link); err != nil {
				v.t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			v.t.Fatal(err)
		}
	}
}
