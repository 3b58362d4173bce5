package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// Defaults of SelfSigned.
const (
	DefaultCAValidity         = 5 * 365 * 24 * time.Hour
	DefaultCertValidity       = 365 * 24 * time.Hour
	DefaultRotateBefore       = 30 * 24 * time.Hour
	DefaultCheckInterval      = time.Hour
	DefaultCAPropagationDelay = time.Minute
	DefaultClusterDomain      = "cluster.local"
)

// maxAttempts bounds the read–decide–write rounds of one sync when other replicas keep
// writing the Secret between our read and our write.
const maxAttempts = 5

// SelfSigned keeps a self-signed CA and a serving certificate for the webhook Service in a
// Secret shared by all replicas, rotates them before they expire, and keeps the caBundle of
// every webhook in a ValidatingWebhookConfiguration equal to the CA bundle. It serves the
// certificate from memory through GetCertificate (and, if CertDir is set, also writes it
// there for tools).
//
// Replicas never fight: the first to Create the Secret wins and the others read it; every
// later write is an Update at the resourceVersion that was read, and on a conflict the
// replica rereads and accepts what the other one wrote if it is valid. A new CA is added to
// the bundle next to the old one and published before any certificate it signs is served;
// the old CA leaves the bundle when it expires.
//
// It is a controller-runtime Runnable for every replica (NeedLeaderElection is false).
// Fields are read when Start is called and must not change afterwards.
type SelfSigned struct {
	// Client talks to the API server directly: the Secret is read uncached, so no Secret
	// informer (and no list/watch of Secrets) is needed.
	Client kubernetes.Interface
	// Namespace and SecretName name the shared Secret (type kubernetes.io/tls; keys
	// tls.crt, tls.key, ca.crt and ca.key).
	Namespace  string
	SecretName string
	// ServiceName is the webhook Service in Namespace; the certificate is valid for
	// svc, svc.ns, svc.ns.svc and svc.ns.svc.<ClusterDomain>.
	ServiceName   string
	ClusterDomain string // default "cluster.local"
	// ExtraDNSNames are more names the certificate is valid for, e.g. the headless Service
	// the node agents dial (<svc>.<ns>.svc, *.<svc>.<ns>.svc). They are part of DNSNames,
	// so a serving certificate whose names differ from them is issued again.
	ExtraDNSNames []string
	// WebhookConfigName is the ValidatingWebhookConfiguration whose every webhook's
	// clientConfig.caBundle is kept equal to the CA bundle. Empty: no injection.
	WebhookConfigName string

	CAValidity   time.Duration // default 5 years
	CertValidity time.Duration // default 1 year
	// RotateBefore: a certificate is renewed this long before it expires (default 30
	// days), but not before two thirds of its lifetime have passed.
	RotateBefore time.Duration
	// CheckInterval is how often the Secret and the caBundle are checked even when nothing
	// is due (default 1 hour). Changes to the webhook configuration are also watched, so a
	// reset caBundle is restored at once when the watch is allowed.
	CheckInterval time.Duration
	// CAPropagationDelay is how long a new CA must have been seen in every caBundle before
	// a serving certificate signed by it is served, so that every API server has picked
	// the bundle up (default 1 minute).
	CAPropagationDelay time.Duration

	// CertDir, if set, receives tls.crt, tls.key and ca.crt whenever they change.
	CertDir string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log defaults to the package logger.
	Log logr.Logger

	current atomic.Pointer[served]
	trigger chan struct{}
	started atomic.Bool

	mu sync.Mutex
	// bundle is the caBundle last published or confirmed.
	bundle []byte
	// bundlePublished is set once every webhook holds bundle, and cleared when a webhook
	// is seen without it and cannot be patched; bundleErr says why it is not set.
	bundlePublished bool
	bundleErr       error
	// publishedSince is when each CA (by fingerprint) was first seen in every caBundle.
	publishedSince map[string]time.Time
}

// served is the certificate being served.
type served struct {
	cert *tls.Certificate
	leaf *x509.Certificate
}

var _ Source = &SelfSigned{}

// DNSNames are the names the serving certificate is valid for: the Service's, then
// ExtraDNSNames (empty ones and repeats left out).
func (s *SelfSigned) DNSNames() []string {
	svc, ns := s.ServiceName, s.Namespace
	domain := s.ClusterDomain
	if domain == "" {
		domain = DefaultClusterDomain
	}
	names := []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc." + domain}
	for _, n := range s.ExtraDNSNames {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// GetCertificate returns the serving certificate; it fails until the first one is loaded.
func (s *SelfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.current.Load(); c != nil {
		return c.cert, nil
	}
	return nil, errors.New("no serving certificate loaded yet")
}

// NotAfter is when the serving certificate expires (zero until one is loaded).
func (s *SelfSigned) NotAfter() time.Time {
	if c := s.current.Load(); c != nil {
		return c.leaf.NotAfter
	}
	return time.Time{}
}

// Ready fails until a serving certificate is loaded and its CA bundle is published to the
// webhook configuration (a configuration that does not exist yet does not hold it back).
func (s *SelfSigned) Ready() error {
	if s.current.Load() == nil {
		return errors.New("no serving certificate loaded yet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bundlePublished {
		if s.bundleErr != nil {
			return fmt.Errorf("caBundle not published: %w", s.bundleErr)
		}
		return errors.New("caBundle not published yet")
	}
	return nil
}

// NeedLeaderElection is false: every replica serves, so every replica needs a certificate.
func (s *SelfSigned) NeedLeaderElection() bool { return false }

// Start bootstraps and then maintains the certificates until ctx is done.
func (s *SelfSigned) Start(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("certs: SelfSigned started twice")
	}
	if err := s.setDefaults(); err != nil {
		return err
	}
	log := s.Log.WithValues("secret", klog.KRef(s.Namespace, s.SecretName), "webhookConfiguration", s.WebhookConfigName)
	log.Info("Maintaining self-signed serving certificate", "dnsNames", s.DNSNames(), "checkInterval", s.CheckInterval)

	var wg sync.WaitGroup
	defer wg.Wait()
	if s.WebhookConfigName != "" {
		wg.Go(func() { s.watchWebhookConfig(ctx) })
	}
	retry := time.Second
	for {
		wait, err := s.sync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "Syncing serving certificate", "retryIn", retry)
			wait, retry = retry, min(2*retry, s.CheckInterval, 5*time.Minute)
		} else {
			retry = time.Second
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case <-s.trigger:
			timer.Stop()
		}
	}
}

func (s *SelfSigned) setDefaults() error {
	var missing []string
	for _, f := range []struct {
		name  string
		unset bool
	}{
		{"Client", s.Client == nil},
		{"Namespace", s.Namespace == ""},
		{"SecretName", s.SecretName == ""},
		{"ServiceName", s.ServiceName == ""},
	} {
		if f.unset {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("certs: SelfSigned needs %v", missing)
	}
	setDefault(&s.CAValidity, DefaultCAValidity)
	setDefault(&s.CertValidity, DefaultCertValidity)
	setDefault(&s.RotateBefore, DefaultRotateBefore)
	setDefault(&s.CheckInterval, DefaultCheckInterval)
	setDefault(&s.CAPropagationDelay, DefaultCAPropagationDelay)
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Log.GetSink() == nil {
		s.Log = log
	}
	s.trigger = make(chan struct{}, 1)
	s.publishedSince = map[string]time.Time{}
	return nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func (s *SelfSigned) policy() policy {
	return policy{DNSNames: s.DNSNames(), CAValidity: s.CAValidity, CertValidity: s.CertValidity, RotateBefore: s.RotateBefore}
}

// sync brings the Secret, the served certificate and the caBundle in step once, and says
// how long to wait before the next sync.
func (s *SelfSigned) sync(ctx context.Context) (time.Duration, error) {
	for range maxAttempts {
		d, rv, err := s.syncSecret(ctx)
		if err != nil {
			return 0, err
		}
		if err := s.serve(d.Next); err != nil {
			return 0, err
		}
		patched, err := s.syncBundle(ctx, d.Next)
		if err != nil {
			return 0, err
		}
		if patched {
			// The bundle just published came from the Secret as we read it. If another
			// replica has written the Secret since, publish again, so that a stale read
			// never takes a CA out of the bundle that the other replica put in.
			sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.SecretName, metav1.GetOptions{})
			if err != nil {
				return 0, fmt.Errorf("rereading secret %s/%s: %w", s.Namespace, s.SecretName, err)
			}
			if sec.ResourceVersion != rv {
				continue
			}
		}
		return s.nextWait(d), nil
	}
	return 0, fmt.Errorf("secret %s/%s kept changing during %d syncs", s.Namespace, s.SecretName, maxAttempts)
}

// nextWait is how long to sleep after a successful sync: until the next renewal or, while a
// new CA propagates, until it has, but at most CheckInterval.
func (s *SelfSigned) nextWait(d decision) time.Duration {
	now := s.Now()
	wait := s.CheckInterval
	if until := d.Renew.Sub(now); until < wait {
		wait = max(until, min(time.Second, s.CheckInterval))
	}
	if d.Waiting {
		s.mu.Lock()
		since, ok := s.publishedSince[fingerprint(d.Next.CA.Cert)]
		s.mu.Unlock()
		left := s.CAPropagationDelay
		if ok {
			left = since.Add(s.CAPropagationDelay).Sub(now)
		}
		wait = min(wait, max(left, 0)+10*time.Millisecond)
	}
	return wait
}

// syncSecret reads the Secret, decides, and writes it if the decision changed it, with
// optimistic concurrency: on AlreadyExists or Conflict it rereads and decides again, which
// normally accepts what the other replica wrote. It returns the decision and the
// resourceVersion of the Secret that holds it.
func (s *SelfSigned) syncSecret(ctx context.Context) (decision, string, error) {
	log := s.Log.WithValues("secret", klog.KRef(s.Namespace, s.SecretName))
	api := s.Client.CoreV1().Secrets(s.Namespace)
	for range maxAttempts {
		sec, err := api.Get(ctx, s.SecretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			d, err := s.policy().plan(material{}, s.Now(), s.isPublished)
			if err != nil {
				return decision{}, "", err
			}
			created, err := api.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name:      s.SecretName,
					Namespace: s.Namespace,
					Labels:    map[string]string{"app.kubernetes.io/managed-by": "netpol-guard"},
				},
				Type: corev1.SecretTypeTLS,
				Data: d.Next.secretData(),
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				log.V(levelDebug).Info("Secret created by another replica first, reading it")
				continue
			}
			if err != nil {
				return decision{}, "", fmt.Errorf("creating secret %s/%s: %w", s.Namespace, s.SecretName, err)
			}
			log.Info("Created certificate Secret", "caNotAfter", d.Next.CA.Cert.NotAfter, "notAfter", d.Next.Serving.Cert.NotAfter)
			return d, created.ResourceVersion, nil
		}
		if err != nil {
			return decision{}, "", fmt.Errorf("reading secret %s/%s: %w", s.Namespace, s.SecretName, err)
		}

		d, err := s.policy().plan(materialFromSecret(sec.Data), s.Now(), s.isPublished)
		if err != nil {
			return decision{}, "", err
		}
		if !d.Changed {
			if d.Waiting {
				log.V(levelDebug).Info("Serving certificate waits for the new CA to propagate")
			}
			return d, sec.ResourceVersion, nil
		}
		update := sec.DeepCopy()
		if update.Data == nil {
			update.Data = map[string][]byte{}
		}
		maps.Copy(update.Data, d.Next.secretData())
		updated, err := api.Update(ctx, update, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			log.V(levelDebug).Info("Secret changed by another replica, rereading")
			continue
		}
		if err != nil {
			return decision{}, "", fmt.Errorf("updating secret %s/%s: %w", s.Namespace, s.SecretName, err)
		}
		log.Info("Updated certificate Secret", "reasons", d.Reasons, "caNotAfter", d.Next.CA.Cert.NotAfter,
			"notAfter", d.Next.Serving.Cert.NotAfter, "bundledCAs", len(d.Next.Bundle))
		return d, updated.ResourceVersion, nil
	}
	return decision{}, "", fmt.Errorf("secret %s/%s kept changing during %d attempts", s.Namespace, s.SecretName, maxAttempts)
}

// isPublished reports whether ca has been in every caBundle for CAPropagationDelay.
func (s *SelfSigned) isPublished(ca *x509.Certificate) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	since, ok := s.publishedSince[fingerprint(ca)]
	return ok && s.Now().Sub(since) >= s.CAPropagationDelay
}

// serve loads m's serving certificate into memory (and CertDir) if it is not already.
func (s *SelfSigned) serve(m material) error {
	if c := s.current.Load(); c != nil && c.leaf.Equal(m.Serving.Cert) {
		return nil
	}
	pair, err := tls.X509KeyPair(m.Serving.CertPEM, m.Serving.KeyPEM)
	if err != nil {
		return fmt.Errorf("loading serving certificate: %w", err)
	}
	pair.Leaf = m.Serving.Cert
	if s.CertDir != "" {
		if err := writeFiles(s.CertDir, map[string][]byte{
			keyTLSCert: m.Serving.CertPEM,
			keyTLSKey:  m.Serving.KeyPEM,
			keyCACert:  m.bundlePEM(),
		}); err != nil {
			return err
		}
	}
	s.current.Store(&served{cert: &pair, leaf: m.Serving.Cert})
	s.Log.Info("Serving certificate loaded", "notAfter", m.Serving.Cert.NotAfter, "issuer", m.Serving.Cert.Issuer.CommonName)
	return nil
}

// writeFiles replaces each file in dir by a rename, so readers never see half a file.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating certificate directory: %w", err)
	}
	for name, data := range files {
		mode := os.FileMode(0o644)
		if name == keyTLSKey {
			mode = 0o600
		}
		tmp, err := os.CreateTemp(dir, "."+name+".tmp")
		if err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		_, err = tmp.Write(data)
		err = errors.Join(err, tmp.Chmod(mode), tmp.Close())
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(dir, name))
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// caBundlePatch is a strategic merge patch of a webhook configuration's caBundles; webhooks
// merge by name, and nothing else in them is touched.
type caBundlePatch struct {
	Webhooks []webhookCABundle `json:"webhooks"`
}

type webhookCABundle struct {
	Name         string `json:"name"`
	ClientConfig struct {
		CABundle []byte `json:"caBundle"`
	} `json:"clientConfig"`
}

// syncBundle makes every webhook's caBundle equal to m's bundle, patching only what
// differs, records since when the CA is published, and says whether it patched.
func (s *SelfSigned) syncBundle(ctx context.Context, m material) (bool, error) {
	want := m.bundlePEM()
	fp := fingerprint(m.CA.Cert)
	s.mu.Lock()
	s.bundle = want
	s.mu.Unlock()
	// published records the outcome: nil when every webhook holds the bundle, else why
	// it is not known to; a webhook seen without the bundle (stale) clears readiness, a
	// failed read alone does not.
	published := func(err error, stale bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.bundleErr = err
		if err != nil {
			if stale {
				s.bundlePublished = false
			}
			return
		}
		s.bundlePublished = true
		if _, ok := s.publishedSince[fp]; !ok {
			s.publishedSince[fp] = s.Now()
		}
		// Forget CAs no longer current.
		maps.DeleteFunc(s.publishedSince, func(k string, _ time.Time) bool { return k != fp })
	}
	if s.WebhookConfigName == "" {
		published(nil, false)
		return false, nil
	}
	log := s.Log.WithValues("webhookConfiguration", s.WebhookConfigName)
	api := s.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := api.Get(ctx, s.WebhookConfigName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// Nothing calls a webhook that is not registered; the watch or the next check
		// injects the bundle once it is.
		log.V(levelWarn).Info("ValidatingWebhookConfiguration not found, nothing to inject")
		published(nil, false)
		return false, nil
	}
	if err != nil {
		err = fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", s.WebhookConfigName, err)
		published(err, false)
		return false, err
	}
	var patch caBundlePatch
	for _, wh := range vwc.Webhooks {
		if !bytes.Equal(wh.ClientConfig.CABundle, want) {
			p := webhookCABundle{Name: wh.Name}
			p.ClientConfig.CABundle = want
			patch.Webhooks = append(patch.Webhooks, p)
		}
	}
	if len(patch.Webhooks) == 0 {
		published(nil, false)
		return false, nil
	}
	// Some webhook lacks the bundle: clients may not trust the CA, so its propagation
	// starts over once the patch is in.
	s.mu.Lock()
	delete(s.publishedSince, fp)
	s.mu.Unlock()
	body, err := json.Marshal(patch)
	if err != nil {
		return false, err
	}
	if _, err := api.Patch(ctx, s.WebhookConfigName, types.StrategicMergePatchType, body, metav1.PatchOptions{}); err != nil {
		err = fmt.Errorf("patching caBundle of ValidatingWebhookConfiguration %s: %w", s.WebhookConfigName, err)
		published(err, true)
		return false, err
	}
	log.Info("Injected caBundle", "webhooks", len(patch.Webhooks), "bundledCAs", len(m.Bundle))
	published(nil, false)
	return true, nil
}

// watchWebhookConfig triggers a sync whenever the webhook configuration appears or changes
// so that a webhook no longer holds the bundle (a `helm upgrade` resets caBundle, say). It
// is an accelerator: without the RBAC to watch, the periodic check still restores it.
func (s *SelfSigned) watchWebhookConfig(ctx context.Context) {
	log := s.Log.WithValues("webhookConfiguration", s.WebhookConfigName)
	api := s.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	selector := fields.OneTermEqualSelector("metadata.name", s.WebhookConfigName).String()
	retry := time.Second
	for ctx.Err() == nil {
		w, err := api.Watch(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			if ctx.Err() == nil {
				log.V(levelWarn).Info("Cannot watch the webhook configuration, relying on periodic checks", "err", err.Error(), "retryIn", retry)
			}
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
			retry = min(2*retry, s.CheckInterval)
			continue
		}
		retry = time.Second
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			if s.bundleStale(ev.Object) {
				log.V(levelDebug).Info("Webhook configuration changed, checking caBundle", "event", ev.Type)
				select {
				case s.trigger <- struct{}{}:
				default:
				}
			}
		}
		w.Stop()
	}
}

// bundleStale reports whether some webhook in obj lacks the bundle last published.
func (s *SelfSigned) bundleStale(obj runtime.Object) bool {
	vwc, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok {
		return false
	}
	s.mu.Lock()
	want := s.bundle
	s.mu.Unlock()
	for _, wh := range vwc.Webhooks {
		if !bytes.Equal(wh.ClientConfig.CABundle, want) {
			return true
		}
	}
	return false
}
