package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// SecretVolume is a directory laid out as the kubelet lays out a mounted Secret, and
// updated the way it updates one (its AtomicWriter): every version of the files goes into a
// new hidden timestamped directory, the symlink ..data is swapped to it by a rename, and
// each key is a symlink through ..data (tls.crt → ..data/tls.crt). A reader never sees a
// file change, only the ..data swap. A netpol-guard webhook with --cert-dir reads it as it
// would read cert-manager's Secret.
type SecretVolume struct {
	Dir     string
	current string // the timestamped directory ..data points to
}

const dataLink = "..data"

// NewSecretVolume creates dir (if need be) and writes the first version of files into it.
func NewSecretVolume(dir string, files map[string][]byte) (*SecretVolume, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	v := &SecretVolume{Dir: dir}
	return v, v.Update(files)
}

// Update writes a new version of the files and swaps ..data to it; keys no longer present
// lose their symlink, and the previous version is removed.
func (v *SecretVolume) Update(files map[string][]byte) error {
	ts, err := os.MkdirTemp(v.Dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05.")) // ..2006_01_02_15_04_05.NNNN
	if err != nil {
		return err
	}
	// As the kubelet's: readable by the pod's user, whoever it is.
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o644); err != nil {
			return err
		}
	}
	tmp := filepath.Join(v.Dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(v.Dir, dataLink)); err != nil {
		return fmt.Errorf("swapping %s: %w", dataLink, err)
	}
	// The user-visible names: created once, pointing through ..data.
	var names []string
	for name := range files {
		names = append(names, name)
		link := filepath.Join(v.Dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, name), link); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(v.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink != 0 && e.Name()[0] != '.' && !slices.Contains(names, e.Name()) {
			_ = os.Remove(filepath.Join(v.Dir, e.Name()))
		}
	}
	if v.current != "" {
		if err := os.RemoveAll(v.current); err != nil {
			return err
		}
	}
	v.current = ts
	return nil
}
