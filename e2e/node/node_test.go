package node_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// defaultClusterID is etcd's cluster ID when started without a token.
const defaultClusterID = "7e27652122e8b2ae"

// metricNames are the metrics the node must export.
var metricNames = []string{
	"etcdsync_sync_status", "etcdsync_resyncs_total", "etcdsync_watcher_restarts_total",
	"etcdsync_cluster_resets_total", "etcdsync_snapshot_duration_seconds", "etcdsync_snapshot_keys",
	"etcdsync_watch_events_total", "etcdsync_updates_total", "etcdsync_updates_suppressed_total",
	"etcdsync_keys", "etcdsync_watch_lag_index",
}

var _ = Describe("The node", func() {
	When("run without --etcd-endpoints", func() {
		var n *node
		BeforeEach(func(ctx SpecContext) {
			n = startEmbeddedNode()
			Eventually(n.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		}, NodeTimeout(30*time.Second))

		It("syncs its embedded etcd: a key written with curl is on stdout, in /state and in /metrics", func(ctx SpecContext) {
			By("telling the user how to write a key")
			Expect(n.session.Err).To(gbytes.Say(regexp.QuoteMeta(
				"curl -X PUT " + n.etcdURL + "/v2/keys/calico/v1/config/Example -d value=hello")))
			Expect(clusterID(ctx, n.etcdURL)).NotTo(Or(BeEmpty(), Equal(defaultClusterID)))
			Expect(n.statuses(Default)).To(Equal([]string{"wait-for-datastore", "resync", "in-sync"}))
			Expect(statusCode(ctx, Default, n.httpURL+"/readyz")).To(Equal(http.StatusOK))

			By("streaming a new key")
			const key = "/calico/v1/config/Example"
			putKey(ctx, n.etcdURL, key, "hello")
			Eventually(n.updates).WithContext(ctx).WithTimeout(2 * time.Second).WithArguments(key).Should(
				ConsistOf(And(HaveField("Type", "new"), HaveField("Value", HaveValue(Equal("hello"))),
					HaveField("Revision", BeNumerically(">", 0)))))
			Eventually(func(g Gomega) {
				code, body := get(ctx, g, n.httpURL+"/state")
				g.Expect(code).To(Equal(http.StatusOK))
				g.Expect(body).To(Equal(`{"status":"in-sync","keys":{"/calico/v1/config/Example":"hello"}}` + "\n"))
			}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())

			By("streaming its update and deletion")
			putKey(ctx, n.etcdURL, key, "again")
			deleteKey(ctx, n.etcdURL, key)
			Eventually(n.updates).WithContext(ctx).WithTimeout(2 * time.Second).WithArguments(key).Should(HaveLen(3))
			us := n.updates(Default, key)
			Expect(us[1].Type).To(Equal("updated"))
			Expect(*us[1].Value).To(Equal("again"))
			Expect(us[2].Type).To(Equal("deleted"))
			Expect(us[2].Value).To(BeNil(), "a deletion has no value")
			Expect(us[0].Revision).To(BeNumerically("<", us[1].Revision))
			Expect(us[1].Revision).To(BeNumerically("<", us[2].Revision))
			Eventually(n.state).WithContext(ctx).Should(Equal(state{Status: "in-sync", Keys: map[string]string{}}))

			By("counting it all in /metrics")
			_, body := get(ctx, Default, n.httpURL+"/metrics")
			for _, name := range metricNames {
				Expect(body).To(ContainSubstring("\n# TYPE "+name+" "), "metric %s", name)
			}
			Expect(n.metric(ctx, Default, `etcdsync_updates_total{type="new"}`)).To(BeNumerically(">=", 1))
			Expect(n.metric(ctx, Default, `etcdsync_updates_total{type="deleted"}`)).To(BeNumerically(">=", 1))
			Expect(n.metric(ctx, Default, `etcdsync_sync_status{status="in-sync"}`)).To(Equal(1.0))
			Expect(n.metric(ctx, Default, `etcdsync_watch_events_total`)).To(BeNumerically(">=", 3))
			Expect(n.metric(ctx, Default, `etcdsync_resyncs_total{cause="start"}`)).To(Equal(1.0))
			Expect(n.metric(ctx, Default, `etcdsync_keys`)).To(Equal(0.0))
			Expect(n.metric(ctx, Default, `etcdsync_watch_lag_index`)).To(Equal(0.0))
		}, SpecTimeout(30*time.Second))

		It("exits 0 on SIGTERM within a few seconds, leaving no process behind and its ports free", func(ctx SpecContext) {
			pid := n.session.Command.Process.Pid
			Expect(children(pid)).To(BeEmpty(), "the embedded etcd runs in-process")
			Expect(statusCode(ctx, Default, n.httpURL+"/healthz")).To(Equal(http.StatusOK))

			n.session.Terminate()
			Eventually(n.session).WithContext(ctx).WithTimeout(5 * time.Second).Should(gexec.Exit(0))
			Expect(n.session.Err).To(gbytes.Say(`msg="node stopped"`))
			Expect(errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)).To(BeTrue(), "process %d still exists", pid)
			for _, port := range n.ports {
				l, err := net.Listen("tcp", addr(port))
				Expect(err).NotTo(HaveOccurred(), "port %d is still taken", port)
				Expect(l.Close()).To(Succeed())
			}
		}, SpecTimeout(30*time.Second))
	})

	When("run with --model calicov1", func() {
		It("shows typed Calico keys and values, and counts what it cannot read", func(ctx SpecContext) {
			n := startEmbeddedNode("--model", "calicov1")
			Eventually(n.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))

			const wep = "/calico/v1/host/h1/workload/k8s/ns.pod/endpoint/eth0"
			putKey(ctx, n.etcdURL, wep, `{"state":"active","name":"cali1","mac":"ee:ee:ee:ee:ee:ee","profile_ids":["p"],"ipv4_nets":["10.0.0.1/32"]}`)
			putKey(ctx, n.etcdURL, "/calico/v1/host/h1/bird_ip", "not an IP")
			putKey(ctx, n.etcdURL, "/calico/v1/no/such/kind", "x")
			Eventually(n.updates).WithContext(ctx).WithTimeout(2 * time.Second).WithArguments(wep).Should(HaveLen(1))
			typed := n.updates(Default, wep)[0].Typed
			Expect(typed).NotTo(BeNil())
			Expect(typed.Kind).To(Equal("WorkloadEndpointKey"))
			Expect(typed.Key).To(MatchJSON(`{"Hostname":"h1","OrchestratorID":"k8s","WorkloadID":"ns.pod","EndpointID":"eth0"}`))
			Expect(string(typed.Value)).To(ContainSubstring(`"name":"cali1"`))

			Eventually(func(g Gomega) {
				g.Expect(n.metric(ctx, g, "etcdsync_parse_failures_total")).To(BeNumerically(">=", 1))
				g.Expect(n.metric(ctx, g, "etcdsync_value_decode_failures_total")).To(BeNumerically(">=", 1))
			}).WithContext(ctx).WithTimeout(2 * time.Second).Should(Succeed())
			Expect(n.updates(Default, "/calico/v1/no/such/kind")).To(BeEmpty(), "a key outside the model is left out")
			bird := n.updates(Default, "/calico/v1/host/h1/bird_ip")
			Expect(bird).To(HaveLen(1), "a value that does not decode still delivers its key")
			Expect(bird[0].Typed.Value).To(BeEmpty())

			code, body := get(ctx, Default, n.httpURL+"/state")
			Expect(code).To(Equal(http.StatusOK))
			Expect(body).To(ContainSubstring(`"typed":{`))
			Expect(body).To(ContainSubstring(`"kind":"HostIPKey"`))
		}, SpecTimeout(40*time.Second))
	})

	When("given --etcd-endpoints", func() {
		var cluster *etcdproc.Cluster
		BeforeEach(func() {
			var err error
			cluster, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(cluster.Stop) // registered before any node's kill, so it runs after
		})

		DescribeTable("syncs that etcd's keys, written before and after it started",
			func(ctx SpecContext, watch string) {
				etcd := cluster.Endpoints()[0]
				putKey(ctx, etcd, "/calico/v1/before", "1")
				putKey(ctx, etcd, "/elsewhere/x", "not synced")
				n := startExternalNode(cluster.Endpoints(), "--watch", watch)
				Eventually(n.state).WithContext(ctx).WithTimeout(20 * time.Second).Should(
					Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/before": "1"}}))
				for i := range 20 { // a burst: each must be seen
					putKey(ctx, etcd, fmt.Sprintf("/calico/v1/after/%02d", i), strconv.Itoa(i))
				}
				Eventually(n.updates).WithContext(ctx).WithTimeout(2 * time.Second).WithArguments("/calico/v1/after/19").Should(
					ConsistOf(HaveField("Type", "new")))
				want := map[string]string{"/calico/v1/before": "1"}
				for i := range 20 {
					want[fmt.Sprintf("/calico/v1/after/%02d", i)] = strconv.Itoa(i)
				}
				Eventually(n.state).WithContext(ctx).WithTimeout(2 * time.Second).Should(
					Equal(state{Status: "in-sync", Keys: want}))
			},
			Entry("with --watch long-poll", "long-poll", SpecTimeout(40*time.Second)),
			Entry("with --watch stream", "stream", SpecTimeout(40*time.Second)),
		)

		It("takes them from ETCDSYNC_ETCD_ENDPOINTS, and prints nothing with --output none", func(ctx SpecContext) {
			putKey(ctx, cluster.Endpoints()[0], "/calico/v1/k", "v")
			ports := freePorts(1)
			n := &node{httpURL: "http://" + addr(ports[0]), ports: ports,
				session: startProcess([]string{"--listen", addr(ports[0]), "--output", "none"},
					"ETCDSYNC_ETCD_ENDPOINTS="+cluster.Endpoints()[0])}
			Eventually(n.state).WithContext(ctx).WithTimeout(20 * time.Second).Should(
				Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/k": "v"}}))
			Consistently(n.session.Out.Contents).WithContext(ctx).WithTimeout(300 * time.Millisecond).Should(BeEmpty())
		}, SpecTimeout(40*time.Second))

		It("keeps running through an etcd rebuild by default, and counts it", func(ctx SpecContext) {
			putKey(ctx, cluster.Endpoints()[0], "/calico/v1/old", "1")
			n := startExternalNode(cluster.Endpoints(), "--cluster-id-poll-interval", "200ms")
			Eventually(n.state).WithContext(ctx).WithTimeout(20 * time.Second).Should(
				Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/old": "1"}}))

			Expect(cluster.Rebuild()).To(Succeed())
			putKey(ctx, cluster.Endpoints()[0], "/calico/v1/new", "2")
			Eventually(n.state).WithContext(ctx).WithTimeout(20 * time.Second).Should(
				Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/new": "2"}}))
			Expect(n.metric(ctx, Default, "etcdsync_cluster_resets_total")).To(BeNumerically(">=", 1))
			Expect(n.session.ExitCode()).To(Equal(-1), "the node is still running")
		}, SpecTimeout(60*time.Second))

		It("exits 1 with one clear error line when etcd is rebuilt under --on-cluster-reset stop", func(ctx SpecContext) {
			n := startExternalNode(cluster.Endpoints(), "--on-cluster-reset", "stop", "--cluster-id-poll-interval", "200ms")
			Eventually(n.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))

			Expect(cluster.Rebuild()).To(Succeed())
			Eventually(n.session).WithContext(ctx).WithTimeout(20 * time.Second).Should(gexec.Exit(1))
			stderr := string(n.session.Err.Contents())
			Expect(linesMatching(stderr, regexp.MustCompile(`exiting`))).To(ConsistOf(
				And(ContainSubstring("level=ERROR"), ContainSubstring("--on-cluster-reset is stop"))))
			Expect(stderr).NotTo(ContainSubstring("goroutine "), "no stack trace")
		}, SpecTimeout(60*time.Second))
	})

	When("given a bad flag", func() {
		DescribeTable("exits 2 naming the flag",
			func(ctx SpecContext, flag string, args ...string) {
				s := startProcess(args)
				Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(2))
				Expect(string(s.Err.Contents())).To(ContainSubstring(flag))
				Expect(string(s.Err.Contents())).NotTo(ContainSubstring("goroutine "), "no stack trace")
			},
			Entry(nil, "--on-cluster-reset", "--on-cluster-reset", "maybe"),
			Entry(nil, "--output", "--output", "xml"),
			Entry(nil, "--prefix", "--prefix", "nope"),
			Entry(nil, "--log-level", "--log-level", "loud"),
			Entry(nil, "--cluster-id-poll-interval", "--cluster-id-poll-interval", "soon"),
			Entry(nil, "--etcd-endpoints", "--etcd-endpoints", "127.0.0.1:2379"),
			Entry("both sources, naming both", "--relay-endpoints: exclusive with --etcd-endpoints",
				"--relay-endpoints", "http://127.0.0.1:1", "--etcd-endpoints", "http://127.0.0.1:2"),
		)

		It("exits 2 naming --embedded-etcd-listen when its port is taken", func(ctx SpecContext) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(taken.Close)
			ports := freePorts(2)
			s := startProcess([]string{
				"--embedded-etcd-listen", taken.Addr().String(),
				"--embedded-etcd-peer-listen", addr(ports[0]),
				"--listen", addr(ports[1]),
			})
			Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(2))
			Expect(string(s.Err.Contents())).To(And(ContainSubstring("--embedded-etcd-listen"), ContainSubstring("address already in use")))
		}, SpecTimeout(15*time.Second))

		It("prints its module version and the VCS revision it was built from with --version, and exits 0", func(ctx SpecContext) {
			rev, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
			Expect(err).NotTo(HaveOccurred(), "the suite builds the node from this git checkout")
			s := startProcess([]string{"--version"})
			Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(0))
			Expect(string(s.Out.Contents())).To(And(
				HavePrefix("node github.com/etcdsync/etcdsync "),
				ContainSubstring("revision "+strings.TrimSpace(string(rev))),
				ContainSubstring(runtime.Version())))
		}, SpecTimeout(15*time.Second))

		It("exits 2 naming --listen when its port is taken", func(ctx SpecContext) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(taken.Close)
			s := startProcess([]string{"--listen", taken.Addr().String(), "--etcd-endpoints", "http://127.0.0.1:1"})
			Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(2))
			Expect(string(s.Err.Contents())).To(ContainSubstring("--listen"))
		}, SpecTimeout(15*time.Second))

		It("exits 2 naming --data-dir when it cannot be used", func(ctx SpecContext) {
			file := filepath.Join(GinkgoT().TempDir(), "file")
			Expect(os.WriteFile(file, nil, 0o600)).To(Succeed())
			ports := freePorts(3)
			s := startProcess([]string{
				"--data-dir", filepath.Join(file, "etcd"),
				"--embedded-etcd-listen", addr(ports[0]), "--embedded-etcd-peer-listen", addr(ports[1]),
				"--listen", addr(ports[2]),
			})
			Eventually(s).WithContext(ctx).WithTimeout(10 * time.Second).Should(gexec.Exit(2))
			Expect(string(s.Err.Contents())).To(ContainSubstring("--data-dir"))
		}, SpecTimeout(15*time.Second))
	})
})
