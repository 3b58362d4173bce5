package cluster

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A hand-written decoder for the Pods, NetworkPolicies and Namespaces of a cluster file,
// which are nearly all of its bytes and of the time the strict typed decoder takes. It
// knows the fields kubectl prints for them and decodes them as sigs.k8s.io/json does; on
// anything else — a field it does not know, a value of another type, a field given twice,
// a string with an escape, an integer out of range — it gives up, and the object is
// decoded again by strictUnmarshal, which gives the same object or names the field at
// fault. So it never decides what is valid: it accepts a subset of what the strict decoder
// accepts, and decodes that subset to the same objects (TestFastDecodeMatchesStrict and
// FuzzDecode check both).
//
// The input has been checked to be JSON when it was split into documents.

// decodeFast decodes raw into obj, which must be new, and reports whether it could; when it
// could not, obj must be reset before it is decoded again. keys is scratch space.
func decodeFast(raw []byte, obj kubeObject, keys [][]byte) (ok bool, scratch [][]byte) {
	p := podScanner{s: raw, keys: keys[:0]}
	switch o := obj.(type) {
	case *corev1.Pod:
		ok = p.pod(o)
	case *networkingv1.NetworkPolicy:
		ok = p.networkPolicy(o)
	case *corev1.Namespace:
		ok = p.namespace(o)
	default:
		return false, keys
	}
	return ok && p.ws() == len(p.s), p.keys
}

// podScanner reads one object. Its methods return false to give up.
type podScanner struct {
	s []byte
	i int
	// keys are those of the objects being read, for finding repeats; each object's start
	// where its parent's end.
	keys [][]byte
}

func (p *podScanner) pod(pod *corev1.Pod) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "apiVersion":
			return p.str(&pod.APIVersion)
		case "kind":
			return p.str(&pod.Kind)
		case "metadata":
			return p.objectMeta(&pod.ObjectMeta)
		case "spec":
			return p.podSpec(&pod.Spec)
		case "status":
			return p.podStatus(&pod.Status)
		}
		return false
	})
}

func (p *podScanner) namespace(ns *corev1.Namespace) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "apiVersion":
			return p.str(&ns.APIVersion)
		case "kind":
			return p.str(&ns.Kind)
		case "metadata":
			return p.objectMeta(&ns.ObjectMeta)
		case "spec":
			return p.object(false, func(key []byte) bool {
				if string(key) == "finalizers" {
					return array(p, &ns.Spec.Finalizers, func(f *corev1.FinalizerName) bool { return p.str((*string)(f)) })
				}
				return false
			})
		case "status":
			return p.object(false, func(key []byte) bool {
				if string(key) == "phase" {
					return p.str((*string)(&ns.Status.Phase))
				}
				return false
			})
		}
		return false
	})
}

func (p *podScanner) networkPolicy(np *networkingv1.NetworkPolicy) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "apiVersion":
			return p.str(&np.APIVersion)
		case "kind":
			return p.str(&np.Kind)
		case "metadata":
			return p.objectMeta(&np.ObjectMeta)
		case "spec":
			s := &np.Spec
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "podSelector":
					return p.labelSelector(&s.PodSelector)
				case "policyTypes":
					return array(p, &s.PolicyTypes, func(t *networkingv1.PolicyType) bool { return p.str((*string)(t)) })
				case "ingress":
					return array(p, &s.Ingress, func(r *networkingv1.NetworkPolicyIngressRule) bool {
						return p.object(false, func(key []byte) bool {
							switch string(key) {
							case "ports":
								return array(p, &r.Ports, p.policyPort)
							case "from":
								return array(p, &r.From, p.policyPeer)
							}
							return false
						})
					})
				case "egress":
					return array(p, &s.Egress, func(r *networkingv1.NetworkPolicyEgressRule) bool {
						return p.object(false, func(key []byte) bool {
							switch string(key) {
							case "ports":
								return array(p, &r.Ports, p.policyPort)
							case "to":
								return array(p, &r.To, p.policyPeer)
							}
							return false
						})
					})
				}
				return false
			})
		}
		return false
	})
}

func (p *podScanner) policyPort(port *networkingv1.NetworkPolicyPort) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "protocol":
			if p.null() {
				return true
			}
			b, ok := p.plainString()
			if ok {
				port.Protocol = new(corev1.Protocol(b))
			}
			return ok
		case "port":
			if p.null() {
				return true
			}
			v := &intstr.IntOrString{}
			if p.ws() >= len(p.s) {
				return false
			}
			if p.s[p.i] == '"' {
				v.Type = intstr.String
				if !p.str(&v.StrVal) {
					return false
				}
			} else {
				v.Type = intstr.Int
				if !p.int32(&v.IntVal) {
					return false
				}
			}
			port.Port = v
			return true
		case "endPort":
			return p.int32Ptr(&port.EndPort)
		}
		return false
	})
}

func (p *podScanner) policyPeer(peer *networkingv1.NetworkPolicyPeer) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "podSelector":
			return p.labelSelectorPtr(&peer.PodSelector)
		case "namespaceSelector":
			return p.labelSelectorPtr(&peer.NamespaceSelector)
		case "ipBlock":
			if p.null() {
				return true
			}
			b := &networkingv1.IPBlock{}
			ok := p.object(false, func(key []byte) bool {
				switch string(key) {
				case "cidr":
					return p.str(&b.CIDR)
				case "except":
					return p.strings(&b.Except)
				}
				return false
			})
			peer.IPBlock = b
			return ok
		}
		return false
	})
}

func (p *podScanner) labelSelectorPtr(dst **metav1.LabelSelector) bool {
	if p.null() {
		return true
	}
	*dst = &metav1.LabelSelector{}
	return p.labelSelector(*dst)
}

func (p *podScanner) labelSelector(sel *metav1.LabelSelector) bool {
	if p.null() {
		return true
	}
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "matchLabels":
			return p.stringMap(&sel.MatchLabels)
		case "matchExpressions":
			return array(p, &sel.MatchExpressions, func(r *metav1.LabelSelectorRequirement) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "key":
						return p.str(&r.Key)
					case "operator":
						return p.str((*string)(&r.Operator))
					case "values":
						return p.strings(&r.Values)
					}
					return false
				})
			})
		}
		return false
	})
}

func (p *podScanner) objectMeta(m *metav1.ObjectMeta) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "name":
			return p.str(&m.Name)
		case "generateName":
			return p.str(&m.GenerateName)
		case "namespace":
			return p.str(&m.Namespace)
		case "uid":
			return p.str((*string)(&m.UID))
		case "resourceVersion":
			return p.str(&m.ResourceVersion)
		case "generation":
			return p.int64(&m.Generation)
		case "creationTimestamp":
			return p.time(&m.CreationTimestamp)
		case "labels":
			return p.stringMap(&m.Labels)
		case "annotations":
			return p.stringMap(&m.Annotations)
		case "finalizers":
			return p.strings(&m.Finalizers)
		case "ownerReferences":
			return array(p, &m.OwnerReferences, func(r *metav1.OwnerReference) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "apiVersion":
						return p.str(&r.APIVersion)
					case "kind":
						return p.str(&r.Kind)
					case "name":
						return p.str(&r.Name)
					case "uid":
						return p.str((*string)(&r.UID))
					case "controller":
						return p.boolPtr(&r.Controller)
					case "blockOwnerDeletion":
						return p.boolPtr(&r.BlockOwnerDeletion)
					}
					return false
				})
			})
		case "managedFields":
			return array(p, &m.ManagedFields, func(e *metav1.ManagedFieldsEntry) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "manager":
						return p.str(&e.Manager)
					case "operation":
						return p.str((*string)(&e.Operation))
					case "apiVersion":
						return p.str(&e.APIVersion)
					case "time":
						return p.timePtr(&e.Time)
					case "fieldsType":
						return p.str(&e.FieldsType)
					case "fieldsV1":
						return p.fieldsV1(&e.FieldsV1)
					case "subresource":
						return p.str(&e.Subresource)
					}
					return false
				})
			})
		}
		return false
	})
}

func (p *podScanner) podSpec(s *corev1.PodSpec) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "containers":
			return array(p, &s.Containers, p.container)
		case "initContainers":
			return array(p, &s.InitContainers, p.container)
		case "nodeName":
			return p.str(&s.NodeName)
		case "hostNetwork":
			return p.boolean(&s.HostNetwork)
		case "restartPolicy":
			return p.str((*string)(&s.RestartPolicy))
		case "dnsPolicy":
			return p.str((*string)(&s.DNSPolicy))
		case "serviceAccountName":
			return p.str(&s.ServiceAccountName)
		case "serviceAccount":
			return p.str(&s.DeprecatedServiceAccount)
		case "schedulerName":
			return p.str(&s.SchedulerName)
		case "priorityClassName":
			return p.str(&s.PriorityClassName)
		case "priority":
			return p.int32Ptr(&s.Priority)
		case "terminationGracePeriodSeconds":
			return p.int64Ptr(&s.TerminationGracePeriodSeconds)
		case "enableServiceLinks":
			return p.boolPtr(&s.EnableServiceLinks)
		case "preemptionPolicy":
			if p.null() {
				return true
			}
			b, ok := p.plainString()
			if ok {
				s.PreemptionPolicy = new(corev1.PreemptionPolicy(b))
			}
			return ok
		case "nodeSelector":
			return p.stringMap(&s.NodeSelector)
		case "securityContext": // only empty, as defaulting leaves it
			if p.null() {
				return true
			}
			s.SecurityContext = &corev1.PodSecurityContext{}
			return p.object(false, func([]byte) bool { return false })
		case "volumes":
			return array(p, &s.Volumes, p.volume)
		case "tolerations":
			return array(p, &s.Tolerations, func(t *corev1.Toleration) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "key":
						return p.str(&t.Key)
					case "operator":
						return p.str((*string)(&t.Operator))
					case "value":
						return p.str(&t.Value)
					case "effect":
						return p.str((*string)(&t.Effect))
					case "tolerationSeconds":
						return p.int64Ptr(&t.TolerationSeconds)
					}
					return false
				})
			})
		}
		return false
	})
}

func (p *podScanner) container(c *corev1.Container) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "name":
			return p.str(&c.Name)
		case "image":
			return p.str(&c.Image)
		case "command":
			return p.strings(&c.Command)
		case "args":
			return p.strings(&c.Args)
		case "workingDir":
			return p.str(&c.WorkingDir)
		case "ports":
			return array(p, &c.Ports, func(port *corev1.ContainerPort) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "name":
						return p.str(&port.Name)
					case "containerPort":
						return p.int32(&port.ContainerPort)
					case "hostPort":
						return p.int32(&port.HostPort)
					case "protocol":
						return p.str((*string)(&port.Protocol))
					case "hostIP":
						return p.str(&port.HostIP)
					}
					return false
				})
			})
		case "env":
			return array(p, &c.Env, func(e *corev1.EnvVar) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "name":
						return p.str(&e.Name)
					case "value":
						return p.str(&e.Value)
					}
					return false
				})
			})
		case "resources":
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "requests":
					return p.resourceList(&c.Resources.Requests)
				case "limits":
					return p.resourceList(&c.Resources.Limits)
				}
				return false
			})
		case "volumeMounts":
			return array(p, &c.VolumeMounts, func(m *corev1.VolumeMount) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "name":
						return p.str(&m.Name)
					case "mountPath":
						return p.str(&m.MountPath)
					case "readOnly":
						return p.boolean(&m.ReadOnly)
					case "subPath":
						return p.str(&m.SubPath)
					}
					return false
				})
			})
		case "terminationMessagePath":
			return p.str(&c.TerminationMessagePath)
		case "terminationMessagePolicy":
			return p.str((*string)(&c.TerminationMessagePolicy))
		case "imagePullPolicy":
			return p.str((*string)(&c.ImagePullPolicy))
		}
		return false
	})
}

// volume reads the volumes kubectl prints for most pods: the projected ServiceAccount token
// (kube-api-access-*), ConfigMaps, Secrets and emptyDirs.
func (p *podScanner) volume(v *corev1.Volume) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "name":
			return p.str(&v.Name)
		case "projected":
			if p.null() {
				return true
			}
			src := &corev1.ProjectedVolumeSource{}
			v.Projected = src
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "defaultMode":
					return p.int32Ptr(&src.DefaultMode)
				case "sources":
					return array(p, &src.Sources, p.volumeProjection)
				}
				return false
			})
		case "configMap":
			if p.null() {
				return true
			}
			src := &corev1.ConfigMapVolumeSource{}
			v.ConfigMap = src
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "name":
					return p.str(&src.Name)
				case "items":
					return array(p, &src.Items, p.keyToPath)
				case "defaultMode":
					return p.int32Ptr(&src.DefaultMode)
				case "optional":
					return p.boolPtr(&src.Optional)
				}
				return false
			})
		case "secret":
			if p.null() {
				return true
			}
			src := &corev1.SecretVolumeSource{}
			v.Secret = src
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "secretName":
					return p.str(&src.SecretName)
				case "items":
					return array(p, &src.Items, p.keyToPath)
				case "defaultMode":
					return p.int32Ptr(&src.DefaultMode)
				case "optional":
					return p.boolPtr(&src.Optional)
				}
				return false
			})
		case "emptyDir":
			if p.null() {
				return true
			}
			src := &corev1.EmptyDirVolumeSource{}
			v.EmptyDir = src
			return p.object(false, func(key []byte) bool {
				if string(key) == "medium" {
					return p.str((*string)(&src.Medium))
				}
				return false
			})
		}
		return false
	})
}

func (p *podScanner) volumeProjection(v *corev1.VolumeProjection) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "serviceAccountToken", "configMap", "downwardAPI":
			if p.null() {
				return true
			}
		}
		switch string(key) {
		case "serviceAccountToken":
			t := &corev1.ServiceAccountTokenProjection{}
			v.ServiceAccountToken = t
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "audience":
					return p.str(&t.Audience)
				case "expirationSeconds":
					return p.int64Ptr(&t.ExpirationSeconds)
				case "path":
					return p.str(&t.Path)
				}
				return false
			})
		case "configMap":
			c := &corev1.ConfigMapProjection{}
			v.ConfigMap = c
			return p.object(false, func(key []byte) bool {
				switch string(key) {
				case "name":
					return p.str(&c.Name)
				case "items":
					return array(p, &c.Items, p.keyToPath)
				case "optional":
					return p.boolPtr(&c.Optional)
				}
				return false
			})
		case "downwardAPI":
			d := &corev1.DownwardAPIProjection{}
			v.DownwardAPI = d
			return p.object(false, func(key []byte) bool {
				if string(key) != "items" {
					return false
				}
				return array(p, &d.Items, func(f *corev1.DownwardAPIVolumeFile) bool {
					return p.object(false, func(key []byte) bool {
						switch string(key) {
						case "path":
							return p.str(&f.Path)
						case "fieldRef":
							if p.null() {
								return true
							}
							r := &corev1.ObjectFieldSelector{}
							f.FieldRef = r
							return p.object(false, func(key []byte) bool {
								switch string(key) {
								case "apiVersion":
									return p.str(&r.APIVersion)
								case "fieldPath":
									return p.str(&r.FieldPath)
								}
								return false
							})
						}
						return false
					})
				})
			})
		}
		return false
	})
}

func (p *podScanner) keyToPath(k *corev1.KeyToPath) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "key":
			return p.str(&k.Key)
		case "path":
			return p.str(&k.Path)
		case "mode":
			return p.int32Ptr(&k.Mode)
		}
		return false
	})
}

func (p *podScanner) podStatus(s *corev1.PodStatus) bool {
	return p.object(false, func(key []byte) bool {
		switch string(key) {
		case "phase":
			return p.str((*string)(&s.Phase))
		case "message":
			return p.str(&s.Message)
		case "reason":
			return p.str(&s.Reason)
		case "hostIP":
			return p.str(&s.HostIP)
		case "hostIPs":
			return array(p, &s.HostIPs, func(ip *corev1.HostIP) bool { return p.ipObject(&ip.IP) })
		case "podIP":
			return p.str(&s.PodIP)
		case "podIPs":
			return array(p, &s.PodIPs, func(ip *corev1.PodIP) bool { return p.ipObject(&ip.IP) })
		case "startTime":
			return p.timePtr(&s.StartTime)
		case "qosClass":
			return p.str((*string)(&s.QOSClass))
		case "observedGeneration":
			return p.int64(&s.ObservedGeneration)
		case "conditions":
			return array(p, &s.Conditions, func(c *corev1.PodCondition) bool {
				return p.object(false, func(key []byte) bool {
					switch string(key) {
					case "type":
						return p.str((*string)(&c.Type))
					case "status":
						return p.str((*string)(&c.Status))
					case "observedGeneration":
						return p.int64(&c.ObservedGeneration)
					case "lastProbeTime":
						return p.time(&c.LastProbeTime)
					case "lastTransitionTime":
						return p.time(&c.LastTransitionTime)
					case "reason":
						return p.str(&c.Reason)
					case "message":
						return p.str(&c.Message)
					}
					return false
				})
			})
		}
		return false
	})
}

func (p *podScanner) ipObject(ip *string) bool {
	return p.object(false, func(key []byte) bool {
		if string(key) == "ip" {
			return p.str(ip)
		}
		return false
	})
}

// The scanner. A null leaves the zero value, as it does in a new object.

// ws skips white space and returns the position.
func (p *podScanner) ws() int {
	p.i = skipSpace(p.s, p.i)
	return p.i
}

// null consumes a null, if that is what comes next.
func (p *podScanner) null() bool {
	if p.ws() < len(p.s) && p.s[p.i] == 'n' {
		p.i += len("null")
		return true
	}
	return false
}

// object reads an object, calling member with each key, which must read the value. The
// keys of an object that is not a map are checked for repeats.
func (p *podScanner) object(isMap bool, member func(key []byte) bool) bool {
	if p.ws() >= len(p.s) || p.s[p.i] != '{' {
		return false
	}
	p.i++
	first := len(p.keys)
	defer func() { p.keys = p.keys[:first] }()
	if p.ws() < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return true
	}
	for {
		key, ok := p.plainString()
		if !ok {
			return false
		}
		if !isMap {
			for _, k := range p.keys[first:] {
				if bytes.Equal(k, key) {
					return false
				}
			}
			p.keys = append(p.keys, key)
		}
		if p.ws() >= len(p.s) || p.s[p.i] != ':' {
			return false
		}
		p.i++
		p.ws()
		if !member(key) {
			return false
		}
		if p.ws() >= len(p.s) {
			return false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.ws()
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// array reads an array into *dst, a new slice (an empty one for []), reading each element
// with elem.
func array[T any](p *podScanner, dst *[]T, elem func(*T) bool) bool {
	if p.null() {
		return true
	}
	if p.ws() >= len(p.s) || p.s[p.i] != '[' {
		return false
	}
	p.i++
	out := make([]T, 0, 1)
	if p.ws() < len(p.s) && p.s[p.i] == ']' {
		p.i++
		*dst = out
		return true
	}
	for {
		out = append(out, *new(T))
		if !elem(&out[len(out)-1]) {
			return false
		}
		if p.ws() >= len(p.s) {
			return false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			*dst = out
			return true
		default:
			return false
		}
	}
}

// plainString reads a string without escapes, in valid UTF-8, and returns its bytes.
func (p *podScanner) plainString() ([]byte, bool) {
	if p.ws() >= len(p.s) || p.s[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	n := bytes.IndexByte(p.s[start:], '"')
	if n < 0 {
		return nil, false
	}
	b := p.s[start : start+n]
	if bytes.IndexByte(b, '\\') >= 0 {
		return nil, false
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			if !utf8.Valid(b) {
				return nil, false
			}
			break
		}
	}
	p.i = start + n + 1
	return b, true
}

func (p *podScanner) str(dst *string) bool {
	if p.null() {
		return true
	}
	b, ok := p.plainString()
	if ok {
		*dst = string(b)
	}
	return ok
}

func (p *podScanner) strings(dst *[]string) bool {
	return array(p, dst, p.str)
}

func (p *podScanner) stringMap(dst *map[string]string) bool {
	if p.null() {
		return true
	}
	m := map[string]string{}
	ok := p.object(true, func(key []byte) bool {
		if _, dup := m[string(key)]; dup {
			return false
		}
		var v string
		if !p.str(&v) {
			return false
		}
		m[string(key)] = v
		return true
	})
	if ok {
		*dst = m
	}
	return ok
}

func (p *podScanner) resourceList(dst *corev1.ResourceList) bool {
	if p.null() {
		return true
	}
	m := corev1.ResourceList{}
	ok := p.object(true, func(key []byte) bool {
		if _, dup := m[corev1.ResourceName(key)]; dup {
			return false
		}
		start := p.i
		p.i = skipValue(p.s, p.i)
		var q resource.Quantity
		if q.UnmarshalJSON(p.s[start:p.i]) != nil {
			return false
		}
		m[corev1.ResourceName(key)] = q
		return true
	})
	if ok {
		*dst = m
	}
	return ok
}

func (p *podScanner) boolean(dst *bool) bool {
	switch {
	case p.null():
		return true
	case bytes.HasPrefix(p.s[p.i:], []byte("true")):
		*dst = true
		p.i += len("true")
		return true
	case bytes.HasPrefix(p.s[p.i:], []byte("false")):
		*dst = false
		p.i += len("false")
		return true
	}
	return false
}

func (p *podScanner) boolPtr(dst **bool) bool {
	if p.null() {
		return true
	}
	v := new(bool)
	if !p.boolean(v) {
		return false
	}
	*dst = v
	return true
}

// integer reads an integer of the given bits; a fraction or an exponent gives up.
func (p *podScanner) integer(bits int) (int64, bool) {
	if p.ws() >= len(p.s) {
		return 0, false
	}
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	n, err := strconv.ParseInt(string(p.s[start:p.i]), 10, bits)
	return n, err == nil
}

func (p *podScanner) int32(dst *int32) bool {
	if p.null() {
		return true
	}
	n, ok := p.integer(32)
	*dst = int32(n)
	return ok
}

func (p *podScanner) int64(dst *int64) bool {
	if p.null() {
		return true
	}
	n, ok := p.integer(64)
	*dst = n
	return ok
}

func (p *podScanner) int32Ptr(dst **int32) bool {
	if p.null() {
		return true
	}
	v := new(int32)
	if !p.int32(v) {
		return false
	}
	*dst = v
	return true
}

func (p *podScanner) int64Ptr(dst **int64) bool {
	if p.null() {
		return true
	}
	v := new(int64)
	if !p.int64(v) {
		return false
	}
	*dst = v
	return true
}

// time reads a metav1.Time as its UnmarshalJSON does.
func (p *podScanner) time(dst *metav1.Time) bool {
	if p.null() {
		return true
	}
	b, ok := p.plainString()
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339, string(b))
	if err != nil {
		return false
	}
	dst.Time = t.Local()
	return true
}

func (p *podScanner) timePtr(dst **metav1.Time) bool {
	if p.null() {
		return true
	}
	v := new(metav1.Time)
	if !p.time(v) {
		return false
	}
	*dst = v
	return true
}

func (p *podScanner) fieldsV1(dst **metav1.FieldsV1) bool {
	if p.null() {
		return true
	}
	start := p.i
	p.i = skipValue(p.s, p.i)
	v := new(metav1.FieldsV1)
	if v.UnmarshalJSON(p.s[start:p.i]) != nil {
		return false
	}
	*dst = v
	return true
}
