package etcdproc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// v3Client is the cluster's Client, closed when the spec ends.
func v3Client(c *etcdproc.Cluster, members ...int) *clientv3.Client {
	GinkgoHelper()
	var cl *clientv3.Client
	var err error
	if len(members) == 0 {
		cl, err = c.Client()
	} else {
		cl, err = c.ClientOf(members...)
	}
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(cl.Close)
	return cl
}

// value is the value of key, read linearizably unless opts say otherwise;
// "" when the key is missing.
func value(ctx context.Context, cl *clientv3.Client, key string, opts ...clientv3.OpOption) (string, error) {
	resp, err := cl.Get(ctx, key, opts...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

var _ = Describe("BinaryOf", func() {
	It("takes etcd 3.7 from $ETCDSYNC_ETCD37_BIN, and says how to build it when it is missing", func() {
		p, err := etcdproc.BinaryOf(etcdproc.V37)
		Expect(err).NotTo(HaveOccurred())
		GinkgoT().Setenv(etcdproc.EnvBinary37, p)
		Expect(etcdproc.BinaryOf(etcdproc.V37)).To(Equal(p))
		Expect(etcdproc.BinaryOf(etcdproc.V35)).NotTo(Equal(p), "3.5 has a variable of its own")

		GinkgoT().Setenv(etcdproc.EnvBinary37, GinkgoT().TempDir()+"/etcd37")
		_, err = etcdproc.BinaryOf(etcdproc.V37)
		Expect(err).To(MatchError(etcdproc.ErrNoBinary))
		Expect(err.Error()).To(ContainSubstring("run make etcd"))
	})
})

var _ = Describe("Cluster on etcd 3.7", Label("etcd"), func() {
	When("it has one member", func() {
		var c *etcdproc.Cluster
		BeforeEach(func() {
			var err error
			c, err = etcdproc.StartMember(etcdproc.Options{Version: etcdproc.V37, Output: GinkgoWriter, Dir: GinkgoT().TempDir()})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(c.Stop)
			Expect(c.Version()).To(Equal(etcdproc.V37))
		})

		It("is etcd 3.7 and serves the v3 API with its own cluster ID", func(ctx SpecContext) {
			resp, err := http.Get(c.Endpoints()[0] + "/version")
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			var version struct {
				Server  string `json:"etcdserver"`
				Cluster string `json:"etcdcluster"`
			}
			Expect(json.NewDecoder(resp.Body).Decode(&version)).To(Succeed())
			Expect(version.Server).To(HavePrefix("3.7."))
			AddReportEntry("etcd 3.7 /version", fmt.Sprintf("%+v", version))

			cl := v3Client(c)
			put, err := cl.Put(ctx, "/etcdproc/a", "1")
			Expect(err).NotTo(HaveOccurred())
			got, err := cl.Get(ctx, "/etcdproc/a")
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Kvs).To(HaveLen(1))
			Expect(string(got.Kvs[0].Value)).To(Equal("1"))
			Expect(got.Kvs[0].ModRevision).To(Equal(put.Header.Revision))
			Expect(c.Revision()).To(Equal(put.Header.Revision))
			Expect(got.Header.ClusterId).NotTo(Equal(uint64(0)))
			Expect(strconv.FormatUint(got.Header.ClusterId, 16)).NotTo(Equal(defaultClusterID))
			Expect(c.Leader()).To(Equal(0))

			// The JSON gateway, which a user's curl writes through.
			gw, err := http.Post(c.Endpoints()[0]+"/v3/kv/put", "application/json",
				strings.NewReader(`{"key":"L2V0Y2Rwcm9jL2dhdGV3YXk=","value":"Zw=="}`)) // /etcdproc/gateway = g
			Expect(err).NotTo(HaveOccurred())
			gwBody, err := io.ReadAll(gw.Body)
			Expect(err).NotTo(HaveOccurred())
			_ = gw.Body.Close()
			Expect(gw.StatusCode).To(Equal(http.StatusOK), "%s", gwBody)
			AddReportEntry("POST /v3/kv/put on etcd 3.7", string(gwBody))
			Expect(value(ctx, cl, "/etcdproc/gateway")).To(Equal("g"))
		}, SpecTimeout(10*time.Second))

		It("refuses v2 requests: 404, and KeysAPI says to use Client", func(ctx SpecContext) {
			// What a v2 client sees on etcd >= 3.6, printed for whoever
			// writes the message that tells a user which API is missing:
			// reads, a watch (refused at once, not held open) and the
			// cluster endpoints alike.
			hc := &http.Client{Timeout: 2 * time.Second}
			for _, path := range []string{"/v2/keys/", "/v2/keys/?wait=true&recursive=true", "/v2/members", "/v2/stats/self"} {
				resp, err := hc.Get(c.Endpoints()[0] + path)
				Expect(err).NotTo(HaveOccurred())
				body, err := io.ReadAll(resp.Body)
				Expect(err).NotTo(HaveOccurred())
				_ = resp.Body.Close()
				AddReportEntry("GET "+path+" on etcd 3.7", fmt.Sprintf("%s, Content-Type %q, X-Etcd-Cluster-Id %q, X-Etcd-Index %q, body %q",
					resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("X-Etcd-Cluster-Id"), resp.Header.Get("X-Etcd-Index"), body))
				Expect(resp.StatusCode).To(Equal(http.StatusNotFound), path)
			}

			v2, err := client.New(client.Config{Endpoints: c.Endpoints(), HeaderTimeoutPerRequest: 2 * time.Second})
			Expect(err).NotTo(HaveOccurred())
			_, err = client.NewKeysAPI(v2).Get(ctx, "/", &client.GetOptions{Quorum: true})
			Expect(err).To(HaveOccurred())
			AddReportEntry("client/v2 KeysAPI.Get on etcd 3.7", fmt.Sprintf("%T: %v", err, err))

			_, err = c.KeysAPI()
			Expect(err).To(MatchError(etcdproc.ErrNoV2))
			Expect(err.Error()).To(ContainSubstring("use Client"))
		}, SpecTimeout(10*time.Second))

		It("keeps its data across StopMember and Restart", func(ctx SpecContext) {
			cl := v3Client(c)
			put, err := cl.Put(ctx, "/etcdproc/a", "1")
			Expect(err).NotTo(HaveOccurred())
			Expect(c.StopMember(0)).To(Succeed())
			Expect(c.Running(0)).To(BeFalse())
			Expect(c.Restart(0)).To(Succeed())
			Expect(value(ctx, cl, "/etcdproc/a")).To(Equal("1"))
			Expect(c.Revision()).To(Equal(put.Header.Revision), "a restart takes no revision")
		}, SpecTimeout(30*time.Second))

		It("gets a new cluster ID and an empty key space from Wipe and Rebuild", func(ctx SpecContext) {
			cl := v3Client(c)
			for i := range 5 {
				_, err := cl.Put(ctx, "/etcdproc/a", strconv.Itoa(i))
				Expect(err).NotTo(HaveOccurred())
			}
			before, err := cl.Get(ctx, "/etcdproc/a")
			Expect(err).NotTo(HaveOccurred())

			Expect(c.Wipe()).To(Succeed())
			Expect(c.Running(0)).To(BeFalse())
			Expect(c.Rebuild()).To(Succeed())

			after, err := cl.Get(ctx, "/etcdproc/a")
			Expect(err).NotTo(HaveOccurred())
			Expect(after.Kvs).To(BeEmpty())
			Expect(after.Header.ClusterId).NotTo(Equal(before.Header.ClusterId))
			Expect(after.Header.Revision).To(BeNumerically("<", before.Header.Revision))
		}, SpecTimeout(30*time.Second))

		It("goes back in time, same cluster ID, on Restore", func(ctx SpecContext) {
			cl := v3Client(c)
			_, err := cl.Put(ctx, "/etcdproc/kept", "old")
			Expect(err).NotTo(HaveOccurred())
			b, err := c.Backup()
			Expect(err).NotTo(HaveOccurred())
			Expect(b.Index()).To(BeZero(), "no v2 index on 3.7")
			Expect(b.Revision()).To(BeNumerically(">", 1))
			for i := range 20 {
				_, err := cl.Put(ctx, "/etcdproc/later", strconv.Itoa(i))
				Expect(err).NotTo(HaveOccurred())
			}
			before, err := cl.Put(ctx, "/etcdproc/kept", "new")
			Expect(err).NotTo(HaveOccurred())

			Expect(c.Restore(b)).To(Succeed())

			after, err := cl.Get(ctx, "/etcdproc/kept")
			Expect(err).NotTo(HaveOccurred())
			Expect(after.Header.ClusterId).To(Equal(before.Header.ClusterId))
			Expect(after.Header.Revision).To(Equal(b.Revision()))
			Expect(after.Kvs).To(HaveLen(1))
			Expect(string(after.Kvs[0].Value)).To(Equal("old"))
			Expect(value(ctx, cl, "/etcdproc/later")).To(BeEmpty())
		}, SpecTimeout(30*time.Second))

		It("compacts: a read below the compacted revision fails", func(ctx SpecContext) {
			cl := v3Client(c)
			first, err := cl.Put(ctx, "/etcdproc/c", "0")
			Expect(err).NotTo(HaveOccurred())
			last, err := cl.Put(ctx, "/etcdproc/c", "1")
			Expect(err).NotTo(HaveOccurred())

			Expect(c.Compact(last.Header.Revision)).To(Succeed())

			_, err = cl.Get(ctx, "/etcdproc/c", clientv3.WithRev(first.Header.Revision))
			Expect(err).To(MatchError(ContainSubstring("required revision has been compacted")))
			Expect(value(ctx, cl, "/etcdproc/c", clientv3.WithRev(last.Header.Revision))).To(Equal("1"))
		}, SpecTimeout(10*time.Second))
	})

	It("runs three members behind peer proxies: a leader, its loss, a partition", func(ctx SpecContext) {
		c, err := etcdproc.StartCluster(3, etcdproc.Options{Version: etcdproc.V37, Output: GinkgoWriter, PeerProxies: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		var leader int
		Eventually(func() error {
			leader, err = c.Leader()
			return err
		}).WithContext(ctx).Should(Succeed())
		cl := v3Client(c)
		_, err = cl.Put(ctx, "/etcdproc/a", "1")
		Expect(err).NotTo(HaveOccurred())

		Expect(c.Kill(leader)).To(Succeed())
		Eventually(func() error {
			_, err := cl.Put(ctx, "/etcdproc/a", "2")
			return err
		}).WithContext(ctx).Should(Succeed())
		Eventually(c.Leader).WithContext(ctx).Should(And(BeNumerically(">=", 0), Not(Equal(leader))))
		Expect(c.Restart(leader)).To(Succeed())
		old := v3Client(c, leader)
		Eventually(value).WithContext(ctx).WithArguments(old, "/etcdproc/a", clientv3.WithSerializable()).Should(Equal("2"))

		leader, err = c.Leader()
		Expect(err).NotTo(HaveOccurred())
		follower := (leader + 1) % 3
		cut := v3Client(c, follower)
		Eventually(value).WithContext(ctx).WithArguments(cut, "/etcdproc/a", clientv3.WithSerializable()).Should(Equal("2"))
		Expect(c.Partition(follower)).To(Succeed())
		_, err = v3Client(c, leader, (leader+2)%3).Put(ctx, "/etcdproc/a", "3")
		Expect(err).NotTo(HaveOccurred())
		Consistently(value).WithContext(ctx).WithArguments(cut, "/etcdproc/a", clientv3.WithSerializable()).
			WithTimeout(time.Second).Should(Equal("2"), "the cut member's store stays where it was")

		Expect(c.Heal()).To(Succeed())
		Eventually(value).WithContext(ctx).WithArguments(cut, "/etcdproc/a", clientv3.WithSerializable()).
			WithTimeout(15 * time.Second).Should(Equal("3"))
	}, SpecTimeout(60*time.Second))
})
