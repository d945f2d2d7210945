package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	"go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
	"github.com/etcdsync/etcdsync/internal/migrate"
)

// migrator is a `node migrate` process started by a spec.
type migrator struct {
	session *gexec.Session
	httpURL string
}

// startMigrate starts `node migrate` from the v2 source at src, with a free
// --listen port, plus extra flags and environment variables ("NAME=value").
func startMigrate(src []string, env []string, extra ...string) *migrator {
	GinkgoHelper()
	ports := freePorts(1)
	args := append([]string{"migrate", "--etcd-endpoints", strings.Join(src, ","), "--listen", addr(ports[0])}, extra...)
	return &migrator{session: startProcess(args, env...), httpURL: "http://" + addr(ports[0])}
}

// summary is --once's last stdout line.
type summary struct {
	Migrated  int   `json:"migrated"`
	Deleted   int   `json:"deleted"`
	Unchanged int   `json:"unchanged"`
	Revision  int64 `json:"revision"`
}

// runOnce runs `node migrate --once` to its end, checks it exited 0, and
// returns its summary, checked to be the one line on stdout.
func runOnce(ctx context.Context, src []string, extra ...string) summary {
	GinkgoHelper()
	m := startMigrate(src, nil, append([]string{"--once"}, extra...)...)
	Eventually(m.session).WithContext(ctx).WithTimeout(90 * time.Second).Should(gexec.Exit())
	Expect(m.session.ExitCode()).To(Equal(0), "stderr: %s", tail(m.session.Err.Contents()))
	out := bytes.TrimSpace(m.session.Out.Contents())
	Expect(bytes.Count(out, []byte("\n"))).To(BeZero(), "one line on stdout: %q", out)
	var s summary
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	Expect(dec.Decode(&s)).To(Succeed(), "stdout %q", out)
	return s
}

func tail(b []byte) string { return string(b[max(0, len(b)-4000):]) }

// v2Keys returns v2's visible keys under prefix, flattened.
func v2Keys(g Gomega, ctx context.Context, kapi client.KeysAPI, prefix string) map[string]string {
	resp, err := kapi.Get(ctx, prefix, &client.GetOptions{Recursive: true, Quorum: true})
	if client.IsKeyNotFound(err) {
		return map[string]string{}
	}
	g.Expect(err).NotTo(HaveOccurred())
	m := map[string]string{}
	var walk func(client.Nodes)
	walk = func(ns client.Nodes) {
		for _, n := range ns {
			if n.Dir {
				walk(n.Nodes)
			} else {
				m[n.Key] = n.Value
			}
		}
	}
	walk(resp.Node.Nodes)
	return m
}

// v3Keys returns v3's keys under prefix+"/".
func v3Keys(g Gomega, ctx context.Context, cl *clientv3.Client, prefix string) map[string]string {
	resp, err := cl.Get(ctx, prefix+"/", clientv3.WithPrefix())
	g.Expect(err).NotTo(HaveOccurred())
	m := map[string]string{}
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

// v3Count returns how many keys v3 has under prefix+"/".
func v3Count(g Gomega, ctx context.Context, cl *clientv3.Client, prefix string) int64 {
	resp, err := cl.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	g.Expect(err).NotTo(HaveOccurred())
	return resp.Count
}

// loadV2 writes keys into v2 from 8 writers at once.
func loadV2(ctx context.Context, kapi client.KeysAPI, keys map[string]string) {
	GinkgoHelper()
	work := make(chan [2]string)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for kv := range work {
				if _, err := kapi.Set(ctx, kv[0], kv[1], nil); err != nil {
					errs <- fmt.Errorf("set %s: %w", kv[0], err)
					return
				}
			}
		}()
	}
	for k, v := range keys {
		select {
		case work <- [2]string{k, v}:
		case err := <-errs:
			close(work)
			wg.Wait()
			Expect(err).NotTo(HaveOccurred())
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	Expect(<-errs).NotTo(HaveOccurred())
}

// manyKeys returns n keys under prefix, spread over directories two deep.
func manyKeys(prefix string, n int) map[string]string {
	keys := make(map[string]string, n)
	for i := range n {
		keys[fmt.Sprintf("%s/bulk/d%02d/e%02d/k%06d", prefix, i%37, i%11, i)] = fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", i%200))
	}
	return keys
}

// jsonEscapes is a value holding every byte JSON escapes (control bytes,
// quote, backslash, and what Go escapes for HTML) and the line separators
// JavaScript cannot hold, amid multi-byte text.
var jsonEscapes = func() string {
	var b strings.Builder
	for c := range 0x20 {
		b.WriteByte(byte(c))
	}
	b.WriteString("\"\\/<>&\x7f\u2028\u2029é漢🙂")
	return b.String()
}()

var _ = Describe("node migrate", Label("migrate"), func() {
	const prefix = "/calico/v1"
	var (
		cluster *etcdproc.Cluster
		kapi    client.KeysAPI
		cl      *clientv3.Client
	)
	BeforeEach(func() {
		var err error
		cluster, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Stop)
		kapi, err = cluster.KeysAPI()
		Expect(err).NotTo(HaveOccurred())
		cl, err = cluster.Client()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cl.Close)
	})

	Describe("--once", func() {
		It("copies directories, TTL keys, escaped bytes and a 1 MiB value, skips hidden keys, deletes v3's extra keys, and a second run writes nothing",
			func(ctx SpecContext) {
				keys := manyKeys(prefix, 2000)
				keys[prefix+"/escapes"] = jsonEscapes
				keys[prefix+"/big/value"] = strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
				keys[prefix+"/empty-value"] = ""
				loadV2(ctx, kapi, keys)
				for _, hidden := range []string{prefix + "/_hidden", prefix + "/dir/_h/x"} {
					_, err := kapi.Set(ctx, hidden, "not copied", nil)
					Expect(err).NotTo(HaveOccurred())
				}
				for i := range 5 { // written within a second or two: some share an expiry second
					k := fmt.Sprintf("%s/ttl/k%d", prefix, i)
					_, err := kapi.Set(ctx, k, "expires", &client.SetOptions{TTL: time.Hour})
					Expect(err).NotTo(HaveOccurred())
					keys[k] = "expires"
				}
				_, err := kapi.Set(ctx, prefix+"/empty-dir", "", &client.SetOptions{Dir: true})
				Expect(err).NotTo(HaveOccurred())
				_, err = cl.Put(ctx, prefix+"/stray", "only in v3")
				Expect(err).NotTo(HaveOccurred())
				_, err = cl.Put(ctx, "/elsewhere", "outside the prefix")
				Expect(err).NotTo(HaveOccurred())
				Expect(v2Keys(Default, ctx, kapi, prefix)).To(Equal(keys), "v2 hides the _ keys")

				first := runOnce(ctx, cluster.Endpoints(), "--prefix", prefix)
				rev, err := cluster.Revision()
				Expect(err).NotTo(HaveOccurred())
				Expect(first).To(Equal(summary{Migrated: len(keys), Deleted: 1, Revision: rev}))
				Expect(v3Keys(Default, ctx, cl, prefix)).To(Equal(keys))
				elsewhere, err := cl.Get(ctx, "/elsewhere")
				Expect(err).NotTo(HaveOccurred())
				Expect(elsewhere.Kvs).To(HaveLen(1), "keys outside the prefix are left alone")

				By("putting TTL keys on leases named by their v2 expiry second, shared within a second")
				leases := map[int64]int{}
				for i := range 5 {
					k := fmt.Sprintf("%s/ttl/k%d", prefix, i)
					v2, err := kapi.Get(ctx, k, nil)
					Expect(err).NotTo(HaveOccurred())
					v3, err := cl.Get(ctx, k)
					Expect(err).NotTo(HaveOccurred())
					Expect(v3.Kvs[0].Lease).To(Equal(migrate.LeaseID(migrate.ExpirySecondOf(*v2.Node.Expiration))))
					leases[v3.Kvs[0].Lease]++
					ttl, err := cl.TimeToLive(ctx, clientv3.LeaseID(v3.Kvs[0].Lease))
					Expect(err).NotTo(HaveOccurred())
					Expect(ttl.TTL).To(BeNumerically("~", v2.Node.TTL, 3))
				}
				Expect(len(leases)).To(BeNumerically("<", 5))

				By("running again on equal data")
				second := runOnce(ctx, cluster.Endpoints(), "--prefix", prefix)
				Expect(second).To(Equal(summary{Unchanged: len(keys), Revision: rev}))
				Expect(cluster.Revision()).To(Equal(rev), "v3's revision did not move")
			}, SpecTimeout(3*time.Minute))

		It("puts a TTL key on a lease that expires it in v3 too", func(ctx SpecContext) {
			_, err := kapi.Set(ctx, prefix+"/stays", "1", nil)
			Expect(err).NotTo(HaveOccurred())
			_, err = kapi.Set(ctx, prefix+"/short", "2", &client.SetOptions{TTL: 4 * time.Second})
			Expect(err).NotTo(HaveOccurred())
			s := runOnce(ctx, cluster.Endpoints())
			Expect(s.Migrated).To(BeNumerically(">=", 1))
			Eventually(v3Keys).WithContext(ctx).WithTimeout(15*time.Second).WithArguments(cl, prefix).
				Should(Equal(map[string]string{prefix + "/stays": "1"}))
			Expect(v2Keys(Default, ctx, kapi, prefix)).To(Equal(map[string]string{prefix + "/stays": "1"}))
		}, SpecTimeout(time.Minute))

		It("finishes a copy killed by SIGKILL at random points when run again, and a last run writes nothing", func(ctx SpecContext) {
			const n = 10000
			keys := manyKeys(prefix, n)
			loadV2(ctx, kapi, keys)
			// The kill points, as counts of keys in v3, are drawn from a
			// seed the spec prints: each run is killed once v3 holds at
			// least the next one, wherever its copy is then.
			seed := GinkgoRandomSeed()
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			By(fmt.Sprintf("killing at points drawn from seed %d (ginkgo --seed replays them)", seed))
			var killedAt []int64
			for i := range 3 {
				at := int64(1 + r.IntN(n*(i+1)/4))
				// Small txns, so that a kill lands mid-copy.
				m := startMigrate(cluster.Endpoints(), nil, "--once", "--max-txn-ops", "4")
				Eventually(v3Count).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(5*time.Millisecond).
					WithArguments(cl, prefix).Should(BeNumerically(">=", max(at, v3Count(Default, ctx, cl, prefix)+1)))
				m.session.Kill()
				Eventually(m.session).WithContext(ctx).Should(gexec.Exit())
				got := v3Count(Default, ctx, cl, prefix)
				killedAt = append(killedAt, got)
				Expect(got).To(BeNumerically("<", n), "kill %d (at %d keys, seed %d) came after the copy ended", i, at, seed)
				Expect(m.session.Out.Contents()).To(BeEmpty(), "no summary from a killed run")
			}
			GinkgoWriter.Printf("killed with %v keys in v3\n", killedAt)

			s := runOnce(ctx, cluster.Endpoints())
			Expect(s.Migrated + s.Unchanged).To(Equal(n))
			Expect(s.Unchanged).To(BeNumerically(">", 0), "the killed runs' txns stay")
			Expect(v3Keys(Default, ctx, cl, prefix)).To(Equal(keys))
			rev, err := cluster.Revision()
			Expect(err).NotTo(HaveOccurred())
			Expect(runOnce(ctx, cluster.Endpoints())).To(Equal(summary{Unchanged: n, Revision: rev}))
		}, SpecTimeout(4*time.Minute))

		It("exits 1 naming the refusal when the target refuses a write, and prints no summary", func(ctx SpecContext) {
			target, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter, Args: []string{"--max-request-bytes=65536"}})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(target.Stop)
			_, err = kapi.Set(ctx, prefix+"/big", strings.Repeat("x", 200<<10), nil)
			Expect(err).NotTo(HaveOccurred())
			m := startMigrate(cluster.Endpoints(), nil, "--once", "--to-endpoints", target.Endpoints()[0])
			Eventually(m.session).WithContext(ctx).WithTimeout(30 * time.Second).Should(gexec.Exit(1))
			Expect(m.session.Out.Contents()).To(BeEmpty())
			Expect(string(m.session.Err.Contents())).To(And(ContainSubstring("etcd v3 target refused the write"),
				ContainSubstring("request is too large")))
		}, SpecTimeout(time.Minute))

		It("exits 1 naming --max-verify-rounds when v2 keeps changing through the verification", func(ctx SpecContext) {
			loadV2(ctx, kapi, manyKeys(prefix, 1000))
			writer, stopWriter := context.WithCancel(ctx)
			wrote := make(chan struct{})
			go func() {
				defer GinkgoRecover()
				defer close(wrote)
				for i := 0; writer.Err() == nil; i++ {
					_, _ = kapi.Set(writer, fmt.Sprintf("%s/busy/k%d", prefix, i%100), fmt.Sprint(i), nil)
				}
			}()
			DeferCleanup(func() { stopWriter(); <-wrote })
			m := startMigrate(cluster.Endpoints(), nil, "--once", "--max-verify-rounds", "1")
			Eventually(m.session).WithContext(ctx).WithTimeout(60 * time.Second).Should(gexec.Exit(1))
			Expect(m.session.Out.Contents()).To(BeEmpty())
			Expect(string(m.session.Err.Contents())).To(And(ContainSubstring("etcd v2 kept changing"),
				ContainSubstring("after 1 verify rounds (--max-verify-rounds)")))
		}, SpecTimeout(2*time.Minute))

		DescribeTable("refuses bad input with one error naming what failed, and prints no summary",
			func(ctx SpecContext, want string, args func() ([]string, []string)) {
				_, err := kapi.Set(ctx, prefix+"/k", "v", nil)
				Expect(err).NotTo(HaveOccurred())
				a, env := args()
				m := startMigrate(cluster.Endpoints(), env, append([]string{"--once", "--request-timeout", "3s"}, a...)...)
				Eventually(m.session).WithContext(ctx).WithTimeout(30 * time.Second).Should(gexec.Exit(1))
				Expect(m.session.Out.Contents()).To(BeEmpty())
				stderr := string(m.session.Err.Contents())
				Expect(stderr).To(ContainSubstring(want))
				Expect(stderr).To(ContainSubstring("level=ERROR"))
				Expect(stderr).NotTo(ContainSubstring("goroutine "), "no stack trace")
				Expect(v3Count(Default, ctx, cl, prefix)).To(BeZero(), "nothing written")
			},
			Entry("a prefix v2 lacks", "prefix not found in etcd v2: /nope", func() ([]string, []string) {
				return []string{"--prefix", "/nope"}, nil
			}),
			Entry("an unreachable target", "etcd v3 target unreachable", func() ([]string, []string) {
				return []string{"--to-endpoints", "http://" + addr(freePorts(1)[0])}, nil
			}),
			Entry("a target without the v3 API", "does not serve etcd's v3 API", func() ([]string, []string) {
				srv := httptest.NewServer(http.NotFoundHandler()) // answers HTTP/1, not gRPC
				DeferCleanup(srv.Close)
				return []string{"--to-endpoints", srv.URL}, nil
			}),
			Entry("wrong v2 credentials", "etcd v2 refused the credentials", func() ([]string, []string) {
				etcdURL := cluster.Endpoints()[0]
				ctx := context.Background()
				v2auth(ctx, etcdURL, http.MethodPut, "/users/root", `{"user":"root","password":"right-pw"}`, "")
				v2auth(ctx, etcdURL, http.MethodPut, "/enable", "", "")
				v2auth(ctx, etcdURL, http.MethodPut, "/roles/guest", `{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}`, "right-pw")
				return []string{"--etcd-username", "root"}, []string{"ETCDSYNC_ETCD_PASSWORD=wrong-pw"}
			}),
		)
	})

	Describe("the command line", func() {
		It("lists its flags on --help", func(ctx SpecContext) {
			s := startProcess([]string{"migrate", "--help"})
			Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
			for _, f := range []string{"--etcd-endpoints", "--to-endpoints", "--to-ca-file", "--to-cert-file", "--to-key-file",
				"--prefix", "--once", "--listen", "--max-txn-ops"} {
				Expect(string(s.Out.Contents())).To(ContainSubstring(f + " "))
			}
		}, SpecTimeout(20*time.Second))

		DescribeTable("exits 2 naming a bad flag",
			func(ctx SpecContext, flag string, args ...string) {
				s := startProcess(append([]string{"migrate"}, args...))
				Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(2))
				Expect(string(s.Err.Contents())).To(ContainSubstring(flag))
			},
			Entry(nil, "--etcd-endpoints", "--once"),
			Entry(nil, "--to-endpoints", "--etcd-endpoints", "http://127.0.0.1:1", "--to-endpoints", "127.0.0.1:2"),
			Entry(nil, "--to-key-file", "--etcd-endpoints", "http://127.0.0.1:1", "--to-cert-file", "c.pem"),
			Entry(nil, "--max-txn-ops", "--etcd-endpoints", "http://127.0.0.1:1", "--max-txn-ops", "0"),
			Entry(nil, "--prefix", "--etcd-endpoints", "http://127.0.0.1:1", "--prefix", "calico"),
			Entry(nil, "--bogus", "--etcd-endpoints", "http://127.0.0.1:1", "--bogus"),
		)
	})

	Describe("continuous mode", func() {
		It("mirrors v2 writes, deletes, directory deletes and TTL expiries, equal after each quiet period", func(ctx SpecContext) {
			loadV2(ctx, kapi, manyKeys(prefix, 500))
			m := startMigrate(cluster.Endpoints(), nil, "--cluster-id-poll-interval", "200ms")
			ready := func(g Gomega) int { return statusCode(ctx, g, m.httpURL+"/readyz") }
			equal := func(g Gomega) {
				g.Expect(v3Keys(g, ctx, cl, prefix)).To(Equal(v2Keys(g, ctx, kapi, prefix)))
				g.Expect(ready(g)).To(Equal(http.StatusOK))
				g.Expect(metric(ctx, g, m.httpURL, "etcdsync_migrate_lag_index")).To(BeZero())
				g.Expect(metric(ctx, g, m.httpURL, "etcdsync_migrate_pending_keys")).To(BeZero())
			}
			Eventually(equal).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

			for round := range 4 {
				By(fmt.Sprintf("round %d: writes, deletes, a directory delete and TTL keys", round))
				for i := range 50 {
					_, err := kapi.Set(ctx, fmt.Sprintf("%s/r%d/k%d", prefix, round, i), fmt.Sprint(i, jsonEscapes), nil)
					Expect(err).NotTo(HaveOccurred())
				}
				for i := range 20 { // keys of d00 to d19, a new one each round; the directory deletes take d30 up
					j := i + 37*round
					_, err := kapi.Delete(ctx, fmt.Sprintf("%s/bulk/d%02d/e%02d/k%06d", prefix, j%37, j%11, j), nil)
					Expect(err).NotTo(HaveOccurred())
				}
				_, err := kapi.Delete(ctx, fmt.Sprintf("%s/bulk/d%02d", prefix, 30+round), &client.DeleteOptions{Recursive: true, Dir: true})
				Expect(err).NotTo(HaveOccurred())
				for i := range 3 {
					_, err := kapi.Set(ctx, fmt.Sprintf("%s/ttl%d/k%d", prefix, round, i), "soon gone", &client.SetOptions{TTL: 2 * time.Second})
					Expect(err).NotTo(HaveOccurred())
				}
				Eventually(equal).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())
				Eventually(func(g Gomega) {
					g.Expect(v2Keys(g, ctx, kapi, prefix)).NotTo(HaveKey(HavePrefix(fmt.Sprintf("%s/ttl%d/", prefix, round))))
					equal(g)
				}).WithContext(ctx).WithTimeout(20*time.Second).Should(Succeed(), "after the TTL keys expired")
			}
			Expect(metric(ctx, Default, m.httpURL, "etcdsync_migrate_keys_written_total")).To(BeNumerically(">=", 500+4*53))
			Expect(metric(ctx, Default, m.httpURL, "etcdsync_migrate_keys_deleted_total")).To(BeNumerically(">=", 4*20))
			Expect(metric(ctx, Default, m.httpURL, "etcdsync_migrate_applied_index")).To(BeNumerically(">", 0))

			m.session.Terminate()
			Eventually(m.session).WithContext(ctx).WithTimeout(20 * time.Second).Should(gexec.Exit(0))
		}, SpecTimeout(3*time.Minute))

		It("follows a TTL refresh, which v2 tells no watcher of, at the next --reconcile-interval", func(ctx SpecContext) {
			const key = prefix + "/refreshed"
			_, err := kapi.Set(ctx, key, "v", &client.SetOptions{TTL: 4 * time.Second})
			Expect(err).NotTo(HaveOccurred())
			m := startMigrate(cluster.Endpoints(), nil, "--reconcile-interval", "500ms")
			leaseMatchesV2 := func(g Gomega) time.Time {
				v2, err := kapi.Get(ctx, key, &client.GetOptions{Quorum: true})
				g.Expect(err).NotTo(HaveOccurred())
				v3, err := cl.Get(ctx, key)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(v3.Kvs).To(HaveLen(1))
				g.Expect(v3.Kvs[0].Lease).To(Equal(migrate.LeaseID(migrate.ExpirySecondOf(*v2.Node.Expiration))))
				return *v2.Node.Expiration
			}
			var first time.Time
			Eventually(func(g Gomega) { first = leaseMatchesV2(g) }).WithContext(ctx).WithTimeout(20 * time.Second).Should(Succeed())

			_, err = kapi.Set(ctx, key, "", &client.SetOptions{TTL: time.Minute, Refresh: true, PrevExist: client.PrevExist})
			Expect(err).NotTo(HaveOccurred())
			Eventually(leaseMatchesV2).WithContext(ctx).WithTimeout(10 * time.Second).Should(BeTemporally(">", first.Add(30*time.Second)))
			Eventually(func(g Gomega) {
				g.Expect(time.Now()).To(BeTemporally(">", first.Add(2*time.Second)), "the first lease's second has passed")
				g.Expect(v3Keys(g, ctx, cl, prefix)).To(Equal(map[string]string{key: "v"}))
			}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Succeed())
			Expect(statusCode(ctx, Default, m.httpURL+"/readyz")).To(Equal(http.StatusOK))
		}, SpecTimeout(time.Minute))

		When("the v2 source is wiped and rebuilt under the mirror", func() {
			var target *etcdproc.Cluster
			var tcl *clientv3.Client
			BeforeEach(func() {
				var err error
				target, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(target.Stop)
				tcl, err = target.Client()
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(tcl.Close)
				for _, k := range []string{"old-a", "old-b", "kept"} {
					_, err := kapi.Set(context.Background(), prefix+"/"+k, "before", nil)
					Expect(err).NotTo(HaveOccurred())
				}
			})

			It("resyncs by default, says so, and makes v3 equal to the new v2", func(ctx SpecContext) {
				m := startMigrate(cluster.Endpoints(), nil, "--to-endpoints", target.Endpoints()[0], "--cluster-id-poll-interval", "200ms")
				Eventually(v3Keys).WithContext(ctx).WithTimeout(30*time.Second).WithArguments(tcl, prefix).Should(HaveLen(3))

				Expect(cluster.Rebuild()).To(Succeed())
				kapi, err := cluster.KeysAPI()
				Expect(err).NotTo(HaveOccurred())
				_, err = kapi.Set(ctx, prefix+"/kept", "after", nil)
				Expect(err).NotTo(HaveOccurred())
				_, err = kapi.Set(ctx, prefix+"/new", "after", nil)
				Expect(err).NotTo(HaveOccurred())
				Eventually(func(g Gomega) {
					g.Expect(v3Keys(g, ctx, tcl, prefix)).To(Equal(map[string]string{prefix + "/kept": "after", prefix + "/new": "after"}))
					g.Expect(statusCode(ctx, g, m.httpURL+"/readyz")).To(Equal(http.StatusOK))
				}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
				Expect(string(m.session.Err.Contents())).To(ContainSubstring("etcd v2 was rebuilt or restored"))
				Expect(m.session.ExitCode()).To(Equal(-1), "still mirroring")
			}, SpecTimeout(2*time.Minute))

			It("exits 1 under --on-cluster-reset stop, leaving v3 as it was", func(ctx SpecContext) {
				m := startMigrate(cluster.Endpoints(), nil, "--to-endpoints", target.Endpoints()[0],
					"--cluster-id-poll-interval", "200ms", "--on-cluster-reset", "stop")
				Eventually(v3Keys).WithContext(ctx).WithTimeout(30*time.Second).WithArguments(tcl, prefix).Should(HaveLen(3))
				Expect(cluster.Rebuild()).To(Succeed())
				Eventually(m.session).WithContext(ctx).WithTimeout(30 * time.Second).Should(gexec.Exit(1))
				Expect(string(m.session.Err.Contents())).To(ContainSubstring("--on-cluster-reset is stop"))
				Expect(v3Keys(Default, ctx, tcl, prefix)).To(HaveLen(3))
			}, SpecTimeout(2*time.Minute))
		})
	})
})

// metric returns the value of series on /metrics at httpURL.
func metric(ctx context.Context, g Gomega, httpURL, series string) float64 {
	return (&node{httpURL: httpURL}).metric(ctx, g, series)
}

var _ = Describe("Moving from v2 to v3 with node migrate", Label("migrate"), func() {
	const prefix = "/calico/v1"
	It("keeps every key in the hosts' maps through the switch: the v3 node equals the v2 node before it and etcd's v3 after it",
		func(ctx SpecContext) {
			cluster, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(cluster.Stop)
			kapi, err := cluster.KeysAPI()
			Expect(err).NotTo(HaveOccurred())
			cl, err := cluster.Client()
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(cl.Close)
			etcd := cluster.Endpoints()

			carried := manyKeys(prefix, 200)
			loadV2(ctx, kapi, carried)
			By("starting the mirror, a relay and its leaf on v2, and a node on v3")
			mirror := startMigrate(etcd, nil)
			relayPort := freePorts(1)[0]
			relayURL := "http://" + addr(relayPort)
			relay := startExternalNode(etcd, "--relay-listen", addr(relayPort))
			leaf := startLeafNode([]string{relayURL})
			v3node := startExternalNode(etcd, "--etcd-api", "v3")

			By("writing v2 while the mirror runs")
			for i := range 50 {
				k := fmt.Sprintf("%s/live/k%02d", prefix, i)
				_, err := kapi.Set(ctx, k, fmt.Sprint(i), nil)
				Expect(err).NotTo(HaveOccurred())
				carried[k] = fmt.Sprint(i)
			}
			By("stopping the v2 writers and waiting for the mirror to be equal, with no lag")
			Eventually(func(g Gomega) {
				g.Expect(statusCode(ctx, g, mirror.httpURL+"/readyz")).To(Equal(http.StatusOK))
				g.Expect(metric(ctx, g, mirror.httpURL, "etcdsync_migrate_lag_index")).To(BeZero())
				for _, n := range []*node{relay, leaf, v3node} {
					g.Expect(n.state(g, ctx)).To(Equal(state{Status: "in-sync", Keys: carried}))
				}
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			mirror.session.Terminate()
			Eventually(mirror.session).WithContext(ctx).WithTimeout(20 * time.Second).Should(gexec.Exit(0))

			By("restarting the relay with --etcd-api v3 on its port; its leaf stays")
			relay.session.Terminate()
			Eventually(relay.session).WithContext(ctx).WithTimeout(20 * time.Second).Should(gexec.Exit(0))
			relay = startExternalNode(etcd, "--etcd-api", "v3", "--relay-listen", addr(relayPort))

			By("switching the writers to v3")
			want := map[string]string{}
			for k, v := range carried {
				want[k] = v
			}
			for i := range 20 {
				k := fmt.Sprintf("%s/after/k%02d", prefix, i)
				_, err := cl.Put(ctx, k, fmt.Sprint(i))
				Expect(err).NotTo(HaveOccurred())
				want[k] = fmt.Sprint(i)
			}
			Eventually(func(g Gomega) {
				g.Expect(v3Keys(g, ctx, cl, prefix)).To(Equal(want))
				for _, n := range []*node{relay, leaf, v3node} {
					g.Expect(n.state(g, ctx)).To(Equal(state{Status: "in-sync", Keys: want}))
				}
			}).WithContext(ctx).WithTimeout(40 * time.Second).Should(Succeed())

			By("checking that no host was ever told a carried key was deleted")
			for name, n := range map[string]*node{"leaf": leaf, "v3 node": v3node, "relay": relay} {
				for _, l := range n.lines(Default) {
					Expect(l.Type).NotTo(Equal("deleted"), "%s: %s", name, l.Key)
				}
			}
			By("checking that the leaf saw the switch as a reset: carried keys arrive as updated, at v3 revisions")
			statuses := leaf.statuses(Default)
			Expect(statuses[len(statuses)-1]).To(Equal("in-sync"))
			Expect(statuses[1:]).To(ContainElement("wait-for-datastore"), "the relay's new revision space is a reset")
			for k := range carried {
				v3, err := cl.Get(ctx, k)
				Expect(err).NotTo(HaveOccurred())
				us := leaf.updates(Default, k)
				Expect(us).To(HaveLen(2), k)
				Expect(us[0].Type).To(Equal("new"))
				Expect(us[1]).To(And(HaveField("Type", "updated"), HaveField("Revision", uint64(v3.Kvs[0].ModRevision))), k)
			}
		}, SpecTimeout(3*time.Minute))
})

var _ = Describe("node migrate over TLS", Label("migrate"), func() {
	It("reads v2 with the --etcd-* certificates and writes v3 with the --to-* ones, and names the target when its own are missing",
		func(ctx SpecContext) {
			ca := newTestCA()
			etcdCert, etcdKey := ca.issue("etcd")
			srcCert, srcKey := ca.issue("migrate-source")
			dstCert, dstKey := ca.issue("migrate-target")
			harnessCert, harnessKey := ca.issue("harness")
			pair, err := tls.LoadX509KeyPair(harnessCert, harnessKey)
			Expect(err).NotTo(HaveOccurred())
			roots := x509.NewCertPool()
			roots.AddCert(ca.cert)
			cluster, err := etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter, ClientTLS: &etcdproc.ClientTLS{
				CertFile: etcdCert, KeyFile: etcdKey, TrustedCAFile: ca.file, ClientCertAuth: true,
				Harness: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
			}})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(cluster.Stop)
			kapi, err := cluster.KeysAPI()
			Expect(err).NotTo(HaveOccurred())
			cl, err := cluster.Client()
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(cl.Close)
			keys := manyKeys("/calico/v1", 50)
			loadV2(ctx, kapi, keys)
			src := []string{"--etcd-ca-file", ca.file, "--etcd-cert-file", srcCert, "--etcd-key-file", srcKey}

			m := startMigrate(cluster.Endpoints(), nil, append(src, "--once", "--request-timeout", "3s", "--to-ca-file", ca.file)...)
			Eventually(m.session).WithContext(ctx).WithTimeout(30 * time.Second).Should(gexec.Exit(1))
			Expect(string(m.session.Err.Contents())).To(And(ContainSubstring("--to-endpoints"),
				ContainSubstring("TLS with the etcd v3 target failed"), ContainSubstring("certificate")))
			Expect(m.session.Out.Contents()).To(BeEmpty())

			s := runOnce(ctx, cluster.Endpoints(), append(src, "--to-ca-file", ca.file, "--to-cert-file", dstCert, "--to-key-file", dstKey)...)
			Expect(s.Migrated).To(Equal(len(keys)))
			Expect(v3Keys(Default, ctx, cl, "/calico/v1")).To(Equal(keys))
		}, SpecTimeout(2*time.Minute))
})
