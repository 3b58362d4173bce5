package certs

import (
	"crypto/x509"
	"testing"
	"time"
)

const day = 24 * time.Hour

var testPolicy = policy{DNSNames: testDNSNames, CAValidity: 100 * day, CertValidity: 30 * day, RotateBefore: 10 * day}

func never(*x509.Certificate) bool  { return false }
func always(*x509.Certificate) bool { return true }

func mustPlan(t *testing.T, p policy, cur material, now time.Time, published func(*x509.Certificate) bool) decision {
	t.Helper()
	d, err := p.plan(cur, now, published)
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, d.Next, now)
	return d
}

// checkComplete asserts the invariant every plan keeps: a CA with its key, the CA first in
// the bundle, and a serving certificate for the policy's names that verifies against the
// bundle.
func checkComplete(t *testing.T, m material, now time.Time) {
	t.Helper()
	if m.CA == nil || m.Serving == nil || len(m.Bundle) == 0 {
		t.Fatalf("incomplete material: CA %v, serving %v, bundle %d", m.CA != nil, m.Serving != nil, len(m.Bundle))
	}
	if !m.Bundle[0].Equal(m.CA.Cert) {
		t.Error("the bundle does not start with the CA")
	}
	roots := x509.NewCertPool()
	for _, c := range m.Bundle {
		roots.AddCert(c)
	}
	if _, err := m.Serving.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: testServerName, CurrentTime: now}); err != nil {
		t.Errorf("serving certificate does not verify against the bundle: %v", err)
	}
}

func TestPlan(t *testing.T) {
	t0 := time.Now()
	boot := mustPlan(t, testPolicy, material{}, t0, never)
	oldCA := boot.Next.CA
	// A serving certificate issued on day 85, still valid when the CA is due on day 90.
	late, err := newServing(oldCA, testDNSNames, t0.Add(85*day), 30*day)
	if err != nil {
		t.Fatal(err)
	}
	lateMaterial := material{CA: oldCA, Bundle: []*x509.Certificate{oldCA.Cert}, Serving: late}
	caDue := t0.Add(90 * day)
	rotating := mustPlan(t, testPolicy, lateMaterial, caDue, never)
	switched := mustPlan(t, testPolicy, rotating.Next, caDue.Add(time.Hour), always)

	tests := []struct {
		name      string
		policy    policy
		cur       material
		now       time.Time
		published func(*x509.Certificate) bool
		check     func(t *testing.T, cur material, d decision)
	}{
		{
			name: "empty secret bootstraps a CA and a serving certificate signed by it",
			cur:  material{}, now: t0, published: never,
			check: func(t *testing.T, _ material, d decision) {
				if !d.Changed || len(d.Next.Bundle) != 1 || !signedBy(d.Next.Serving.Cert, d.Next.CA.Cert) {
					t.Errorf("changed %v, bundle %d", d.Changed, len(d.Next.Bundle))
				}
			},
		},
		{
			name: "valid material is kept as it is",
			cur:  boot.Next, now: t0.Add(day), published: never,
			check: func(t *testing.T, cur material, d decision) {
				if d.Changed || d.Next.CA != cur.CA || d.Next.Serving != cur.Serving || d.Waiting {
					t.Errorf("changed %v (%v), waiting %v", d.Changed, d.Reasons, d.Waiting)
				}
				if want := renewalTime(cur.Serving.Cert, testPolicy.RotateBefore); !d.Renew.Equal(want) {
					t.Errorf("renew at %v, want %v", d.Renew, want)
				}
			},
		},
		{
			name:   "serving certificate for other DNS names is reissued by the same CA",
			policy: policy{DNSNames: append([]string{"other"}, testDNSNames...), CAValidity: 100 * day, CertValidity: 30 * day, RotateBefore: 10 * day},
			cur:    boot.Next, now: t0.Add(day), published: never,
			check: func(t *testing.T, cur material, d decision) {
				if !d.Changed || d.Next.Serving == cur.Serving || d.Next.CA != cur.CA {
					t.Errorf("changed %v, new serving %v, same CA %v", d.Changed, d.Next.Serving != cur.Serving, d.Next.CA == cur.CA)
				}
				if !sameNames(d.Next.Serving.Cert.DNSNames, append([]string{"other"}, testDNSNames...)) {
					t.Errorf("names %v", d.Next.Serving.Cert.DNSNames)
				}
			},
		},
		{
			name: "serving certificate due for renewal is reissued by the same CA",
			cur:  boot.Next, now: renewalTime(boot.Next.Serving.Cert, 10*day), published: never,
			check: func(t *testing.T, cur material, d decision) {
				if d.Next.Serving == cur.Serving || d.Next.CA != cur.CA || d.Waiting {
					t.Errorf("reissued %v, same CA %v, waiting %v", d.Next.Serving != cur.Serving, d.Next.CA == cur.CA, d.Waiting)
				}
			},
		},
		{
			name: "CA due: new CA bundled ahead of the old one, serving certificate kept until published",
			cur:  lateMaterial, now: caDue, published: never,
			check: func(t *testing.T, cur material, d decision) {
				if d.Next.CA == cur.CA || len(d.Next.Bundle) != 2 || !d.Next.Bundle[1].Equal(oldCA.Cert) {
					t.Fatalf("new CA %v, bundle %d", d.Next.CA != cur.CA, len(d.Next.Bundle))
				}
				if d.Next.Serving != cur.Serving || !d.Waiting || !d.Changed {
					t.Errorf("serving kept %v, waiting %v, changed %v", d.Next.Serving == cur.Serving, d.Waiting, d.Changed)
				}
			},
		},
		{
			name: "new CA published: serving certificate moves to it, both CAs stay bundled",
			cur:  rotating.Next, now: caDue.Add(time.Hour), published: always,
			check: func(t *testing.T, cur material, d decision) {
				if d.Next.CA != cur.CA || !signedBy(d.Next.Serving.Cert, d.Next.CA.Cert) || len(d.Next.Bundle) != 2 || d.Waiting {
					t.Errorf("same CA %v, signed by new %v, bundle %d, waiting %v",
						d.Next.CA == cur.CA, signedBy(d.Next.Serving.Cert, d.Next.CA.Cert), len(d.Next.Bundle), d.Waiting)
				}
			},
		},
		{
			name: "new CA not yet published: still waiting an hour later",
			cur:  rotating.Next, now: caDue.Add(time.Hour), published: never,
			check: func(t *testing.T, cur material, d decision) {
				if d.Changed || !d.Waiting || d.Next.Serving != cur.Serving {
					t.Errorf("changed %v, waiting %v", d.Changed, d.Waiting)
				}
			},
		},
		{
			name: "expired CA leaves the bundle",
			cur:  switched.Next, now: oldCA.Cert.NotAfter.Add(time.Second), published: always,
			check: func(t *testing.T, cur material, d decision) {
				if !d.Changed || len(d.Next.Bundle) != 1 || d.Next.Serving != cur.Serving || d.Next.CA != cur.CA {
					t.Errorf("changed %v, bundle %d", d.Changed, len(d.Next.Bundle))
				}
			},
		},
		{
			name: "expired serving certificate is reissued by the new CA at once, published or not",
			cur:  lateMaterial, now: late.Cert.NotAfter.Add(time.Second), published: never,
			check: func(t *testing.T, cur material, d decision) {
				if d.Waiting || d.Next.CA == cur.CA || !signedBy(d.Next.Serving.Cert, d.Next.CA.Cert) {
					t.Errorf("waiting %v, new CA %v", d.Waiting, d.Next.CA != cur.CA)
				}
			},
		},
		{
			name: "garbage in the Secret is replaced",
			cur: materialFromSecret(map[string][]byte{
				keyTLSCert: []byte("not a certificate"), keyTLSKey: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
				keyCACert: []byte("junk"), keyCAKey: nil,
			}),
			now: t0, published: never,
			check: func(t *testing.T, cur material, d decision) {
				if cur.CA != nil || cur.Serving != nil || !d.Changed {
					t.Errorf("parsed CA %v, serving %v; changed %v", cur.CA != nil, cur.Serving != nil, d.Changed)
				}
			},
		},
		{
			name: "serving certificate whose key does not match is replaced",
			cur: materialFromSecret(map[string][]byte{
				keyTLSCert: boot.Next.Serving.CertPEM, keyTLSKey: oldCA.KeyPEM,
				keyCACert: boot.Next.bundlePEM(), keyCAKey: oldCA.KeyPEM,
			}),
			now: t0, published: never,
			check: func(t *testing.T, cur material, d decision) {
				if cur.Serving != nil || cur.CA == nil || !d.Changed || !d.Next.CA.Cert.Equal(oldCA.Cert) {
					t.Errorf("parsed serving %v, CA %v; changed %v", cur.Serving != nil, cur.CA != nil, d.Changed)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if p.DNSNames == nil {
				p = testPolicy
			}
			d := mustPlan(t, p, tc.cur, tc.now, tc.published)
			tc.check(t, tc.cur, d)
		})
	}
}

func TestMaterialRoundTripsThroughSecretData(t *testing.T) {
	d := mustPlan(t, testPolicy, material{}, time.Now(), never)
	got := materialFromSecret(d.Next.secretData())
	if got.CA == nil || !got.CA.Cert.Equal(d.Next.CA.Cert) || got.Serving == nil || !got.Serving.Cert.Equal(d.Next.Serving.Cert) {
		t.Fatal("material changed through Secret data")
	}
	again := mustPlan(t, testPolicy, got, time.Now(), never)
	if again.Changed {
		t.Errorf("reparsed material changed: %v", again.Reasons)
	}
}

func TestRenewalTime(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		validity time.Duration
		before   time.Duration
		want     time.Duration // before expiry
	}{
		{"a year renews RotateBefore ahead of expiry", 365 * day, 30 * day, 30 * day},
		{"a short certificate renews after two thirds of its life", 9 * day, 30 * day, 3*day + backdate/3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := newCA(now, tc.validity)
			if err != nil {
				t.Fatal(err)
			}
			if got := ca.Cert.NotAfter.Sub(renewalTime(ca.Cert, tc.before)); got != tc.want {
				t.Errorf("renews %v before expiry, want %v", got, tc.want)
			}
		})
	}
}

// The Secret is outside input: whatever it holds, parsing does not panic and the plan
// yields complete material.
func FuzzMaterialFromSecret(f *testing.F) {
	d, err := testPolicy.plan(material{}, time.Now(), never)
	if err != nil {
		f.Fatal(err)
	}
	data := d.Next.secretData()
	f.Add(data[keyTLSCert], data[keyTLSKey], data[keyCACert], data[keyCAKey])
	f.Add([]byte{}, []byte{}, []byte{}, []byte{})
	f.Add(data[keyCACert], data[keyCAKey], data[keyTLSCert], data[keyTLSKey])
	f.Fuzz(func(t *testing.T, crt, key, caCrt, caKey []byte) {
		now := time.Now()
		m := materialFromSecret(map[string][]byte{keyTLSCert: crt, keyTLSKey: key, keyCACert: caCrt, keyCAKey: caKey})
		d, err := testPolicy.plan(m, now, never)
		if err != nil {
			t.Fatal(err)
		}
		checkComplete(t, d.Next, now)
	})
}
