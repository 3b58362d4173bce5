package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// dataDir is the symlink through which a Kubernetes Secret or ConfigMap volume exposes its
// files: tls.crt → ..data/tls.crt → ..2024_01_02_03_04_05.123/tls.crt. The kubelet updates
// the volume by writing a new timestamped directory and renaming a new symlink over ..data,
// so the files the user sees are never modified, only re-pointed.
const dataDir = "..data"

// DefaultPollInterval is how often Directory rereads the files when no event arrived.
const DefaultPollInterval = 10 * time.Second

// Directory serves the certificate pair kept in a directory, typically cert-manager's
// Secret mounted as a volume (tls.crt, tls.key, ca.crt), and reloads it when the files
// change. It wraps controller-runtime's certwatcher, which watches the files and polls, and
// adds a watch on the directory itself so the kubelet's ..data symlink swap is seen at once
// however often it happens. A handshake always gets a complete pair: the pair in use is
// replaced only by another pair that parsed and matched.
//
// It is a controller-runtime Runnable for every replica (NeedLeaderElection is false).
type Directory struct {
	// Dir holds the files.
	Dir string
	// CertName and KeyName default to tls.crt and tls.key.
	CertName, KeyName string
	// PollInterval is how often the files are reread regardless of events (default 10s).
	PollInterval time.Duration
	// Now is the clock for Ready's expiry check (default time.Now).
	Now func() time.Time
	// Log defaults to the package logger.
	Log logr.Logger

	watcher atomic.Pointer[certwatcher.CertWatcher]
	started atomic.Bool

	mu      sync.Mutex
	loadErr error
}

var _ Source = &Directory{}

// GetCertificate returns the pair last loaded; it fails until one is.
func (d *Directory) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cw := d.watcher.Load(); cw != nil {
		if c, err := cw.GetCertificate(hello); c != nil || err != nil {
			return c, err
		}
	}
	return nil, d.notLoaded()
}

// NotAfter is when the certificate being served expires (zero until one is loaded).
func (d *Directory) NotAfter() time.Time {
	if leaf := d.leaf(); leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

// Ready fails until a pair is loaded, and when the loaded certificate has expired.
func (d *Directory) Ready() error {
	leaf := d.leaf()
	if leaf == nil {
		return d.notLoaded()
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	if !now().Before(leaf.NotAfter) {
		return fmt.Errorf("serving certificate in %s expired at %s", d.Dir, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// NeedLeaderElection is false: every replica serves, so every replica needs a certificate.
func (d *Directory) NeedLeaderElection() bool { return false }

func (d *Directory) leaf() *x509.Certificate {
	cw := d.watcher.Load()
	if cw == nil {
		return nil
	}
	c, _ := cw.GetCertificate(nil)
	if c == nil || len(c.Certificate) == 0 {
		return nil
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

func (d *Directory) notLoaded() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loadErr != nil {
		return fmt.Errorf("no serving certificate loaded from %s yet: %w", d.Dir, d.loadErr)
	}
	return fmt.Errorf("no serving certificate loaded from %s yet", d.Dir)
}

// Start loads the pair, waiting for it to appear if need be, and reloads it on change until
// ctx is done.
func (d *Directory) Start(ctx context.Context) error {
	if d.started.Swap(true) {
		return errors.New("certs: Directory started twice")
	}
	if d.Dir == "" {
		return errors.New("certs: Directory needs Dir")
	}
	if d.CertName == "" {
		d.CertName = keyTLSCert
	}
	if d.KeyName == "" {
		d.KeyName = keyTLSKey
	}
	setDefault(&d.PollInterval, DefaultPollInterval)
	if d.Log.GetSink() == nil {
		d.Log = log
	}
	log := d.Log.WithValues("dir", d.Dir)
	certPath, keyPath := filepath.Join(d.Dir, d.CertName), filepath.Join(d.Dir, d.KeyName)

	// The volume may be empty or half-written until the issuer has done its work.
	var cw *certwatcher.CertWatcher
	for warned := false; ; {
		var err error
		if cw, err = certwatcher.New(certPath, keyPath); err == nil {
			break
		}
		d.mu.Lock()
		d.loadErr = err
		d.mu.Unlock()
		if !warned {
			log.V(levelWarn).Info("Waiting for a serving certificate", "err", err.Error())
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Second, d.PollInterval)):
		}
	}
	cw = cw.WithWatchInterval(d.PollInterval)
	// certwatcher calls back on a goroutine of its own; log from one we wait for.
	loaded := make(chan struct{}, 1)
	cw.RegisterCallback(func(tls.Certificate) {
		select {
		case loaded <- struct{}{}:
		default:
		}
	})
	d.watcher.Store(cw)

	dirWatch, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", d.Dir, err)
	}
	if err := dirWatch.Add(d.Dir); err != nil {
		_ = dirWatch.Close()
		return fmt.Errorf("watching %s: %w", d.Dir, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.watchDir(dirWatch, cw, log) })
	logCtx, stopLog := context.WithCancel(ctx)
	wg.Go(func() {
		for {
			select {
			case <-logCtx.Done():
				return
			case <-loaded:
				if leaf := d.leaf(); leaf != nil {
					log.Info("Serving certificate loaded", "notAfter", leaf.NotAfter, "subject", leaf.Subject.String())
				}
			}
		}
	})
	err = cw.Start(ctx)
	_ = dirWatch.Close()
	stopLog()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("watching serving certificate in %s: %w", d.Dir, err)
	}
	return nil
}

// watchDir rereads the pair when ..data is swapped or a file is replaced in place.
func (d *Directory) watchDir(w *fsnotify.Watcher, cw *certwatcher.CertWatcher, log logr.Logger) {
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			switch filepath.Base(ev.Name) {
			case dataDir, d.CertName, d.KeyName:
			default:
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if err := cw.ReadCertificate(); err != nil {
				// A pair caught mid-update; the next event or poll completes it.
				log.V(levelDebug).Info("Rereading serving certificate", "event", ev.String(), "err", err.Error())
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.V(levelWarn).Info("Watching certificate directory", "err", err.Error())
		}
	}
}
