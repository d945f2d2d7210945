package etcdproc_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// defaultClusterID is what etcd reports when started without a token.
const defaultClusterID = "7e27652122e8b2ae"

func keysAPI(endpoints []string) client.KeysAPI {
	c, err := client.New(client.Config{
		Endpoints:               endpoints,
		HeaderTimeoutPerRequest: 2 * time.Second,
	})
	Expect(err).NotTo(HaveOccurred())
	return client.NewKeysAPI(c)
}

// rootGet is a quorum GET of the root: index and cluster ID of the cluster.
func rootGet(ctx context.Context, kapi client.KeysAPI) *client.Response {
	GinkgoHelper()
	resp, err := kapi.Get(ctx, "/", &client.GetOptions{Quorum: true})
	Expect(err).NotTo(HaveOccurred())
	return resp
}

var _ = Describe("Binary", func() {
	It("is taken from $ETCDSYNC_ETCD_BIN", func() {
		p, err := etcdproc.Binary()
		Expect(err).NotTo(HaveOccurred())
		GinkgoT().Setenv(etcdproc.EnvBinary, p)
		Expect(etcdproc.Binary()).To(Equal(p))
	})

	It("says how to build it when it is missing", func() {
		GinkgoT().Setenv(etcdproc.EnvBinary, filepath.Join(GinkgoT().TempDir(), "etcd"))
		_, err := etcdproc.Binary()
		Expect(err).To(MatchError(etcdproc.ErrNoBinary))
		Expect(err.Error()).To(ContainSubstring("run make etcd"))
	})
})

var _ = Describe("Cluster", Label("etcd"), func() {
	When("it has one member", func() {
		var c *etcdproc.Cluster
		BeforeEach(func() {
			var err error
			c, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter, Dir: GinkgoT().TempDir()})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(c.Stop)
		})

		It("serves the v2 API with its own cluster ID", func(ctx SpecContext) {
			Expect(c.Endpoints()).To(HaveLen(1))
			kapi := keysAPI(c.Endpoints())
			set, err := kapi.Set(ctx, "/etcdproc/a", "1", nil)
			Expect(err).NotTo(HaveOccurred())
			Expect(set.Action).To(Equal("set"))
			got, err := kapi.Get(ctx, "/etcdproc/a", nil)
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Node.Value).To(Equal("1"))
			Expect(got.Index).To(Equal(set.Node.ModifiedIndex))
			Expect(got.ClusterID).NotTo(BeEmpty())
			Expect(got.ClusterID).NotTo(Equal(defaultClusterID))
			Expect(c.Leader()).To(Equal(0))
		}, SpecTimeout(10*time.Second))

		It("gets a new cluster ID and an empty key space from Rebuild", func(ctx SpecContext) {
			kapi := keysAPI(c.Endpoints())
			_, err := kapi.Set(ctx, "/etcdproc/a", "1", nil)
			Expect(err).NotTo(HaveOccurred())
			before := rootGet(ctx, kapi)

			Expect(c.Rebuild()).To(Succeed())

			after := rootGet(ctx, kapi)
			Expect(after.ClusterID).NotTo(Equal(before.ClusterID))
			Expect(after.Index).To(BeNumerically("<", before.Index))
			_, err = kapi.Get(ctx, "/etcdproc/a", nil)
			Expect(client.IsKeyNotFound(err)).To(BeTrue(), "%v", err)
		}, SpecTimeout(20*time.Second))

		It("goes back in time, same cluster ID, on Restore", func(ctx SpecContext) {
			kapi := keysAPI(c.Endpoints())
			_, err := kapi.Set(ctx, "/etcdproc/kept", "old", nil)
			Expect(err).NotTo(HaveOccurred())
			b, err := c.Backup()
			Expect(err).NotTo(HaveOccurred())
			for i := range 20 {
				_, err := kapi.Set(ctx, "/etcdproc/later", strconv.Itoa(i), nil)
				Expect(err).NotTo(HaveOccurred())
			}
			_, err = kapi.Set(ctx, "/etcdproc/kept", "new", nil)
			Expect(err).NotTo(HaveOccurred())
			before := rootGet(ctx, kapi)

			Expect(c.Restore(b)).To(Succeed())

			after := rootGet(ctx, kapi)
			Expect(after.ClusterID).To(Equal(before.ClusterID))
			Expect(after.Index).To(BeNumerically("<", before.Index))
			Expect(after.Index).To(BeNumerically(">=", b.Index()))
			Expect(c.Revision()).To(Equal(b.Revision()), "a restart takes no v3 revision")
			got, err := kapi.Get(ctx, "/etcdproc/kept", nil)
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Node.Value).To(Equal("old"))
			_, err = kapi.Get(ctx, "/etcdproc/later", nil)
			Expect(client.IsKeyNotFound(err)).To(BeTrue(), "%v", err)
		}, SpecTimeout(20*time.Second))

		It("leaves no process behind after Stop, however often it is called", func() {
			Expect(c.Running(0)).To(BeTrue())
			Expect(c.Stop()).To(Succeed())
			Expect(c.Stop()).To(Succeed())
			Expect(c.Running(0)).To(BeFalse())
			Expect(c.Restart(0)).To(MatchError(etcdproc.ErrStopped))
		})
	})

	When("it has three members", func() {
		var c *etcdproc.Cluster
		BeforeEach(func() {
			var err error
			c, err = etcdproc.StartCluster(3, etcdproc.Options{Output: GinkgoWriter})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(c.Stop)
		})

		It("elects a leader and survives the loss of one member", func(ctx SpecContext) {
			Expect(c.Endpoints()).To(HaveLen(3))
			var leader int
			Eventually(func() error {
				var err error
				leader, err = c.Leader()
				return err
			}).WithContext(ctx).Should(Succeed())
			kapi := keysAPI(c.Endpoints())
			_, err := kapi.Set(ctx, "/etcdproc/a", "1", nil)
			Expect(err).NotTo(HaveOccurred())

			Expect(c.Kill(leader)).To(Succeed())
			Expect(c.Running(leader)).To(BeFalse())
			Eventually(func() error {
				_, err := kapi.Set(ctx, "/etcdproc/a", "2", nil)
				return err
			}).WithContext(ctx).Should(Succeed())
			Eventually(c.Leader).WithContext(ctx).Should(And(BeNumerically(">=", 0), Not(Equal(leader))))

			Expect(c.Restart(leader)).To(Succeed())
			single := keysAPI(c.Endpoints()[leader : leader+1])
			Eventually(func() (string, error) {
				resp, err := single.Get(ctx, "/etcdproc/a", nil)
				if err != nil {
					return "", err
				}
				return resp.Node.Value, nil
			}).WithContext(ctx).Should(Equal("2"))
		}, SpecTimeout(30*time.Second))

		It("freezes a member: it answers nothing while the others go on, and thaws", func(ctx SpecContext) {
			Expect(c.Freeze(0)).To(Succeed())
			frozen := keysAPI(c.Endpoints()[:1])
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := frozen.Get(short, "/", nil)
			Expect(err).To(MatchError(context.DeadlineExceeded), "a frozen member accepts connections and answers nothing")
			others, err := c.KeysAPIOf(1, 2)
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() error {
				_, err := others.Set(ctx, "/etcdproc/frozen", "1", nil)
				return err
			}).WithContext(ctx).Should(Succeed())

			Expect(c.Thaw(0)).To(Succeed())
			Eventually(func() (string, error) {
				resp, err := frozen.Get(ctx, "/etcdproc/frozen", nil)
				if err != nil {
					return "", err
				}
				return resp.Node.Value, nil
			}).WithContext(ctx).Should(Equal("1"))
		}, SpecTimeout(30*time.Second))

		It("goes back in time as a whole on Restore", func(ctx SpecContext) {
			kapi := keysAPI(c.Endpoints())
			_, err := kapi.Set(ctx, "/etcdproc/kept", "old", nil)
			Expect(err).NotTo(HaveOccurred())
			b, err := c.Backup()
			Expect(err).NotTo(HaveOccurred())
			_, err = kapi.Set(ctx, "/etcdproc/kept", "new", nil)
			Expect(err).NotTo(HaveOccurred())
			before := rootGet(ctx, kapi)

			Expect(c.Restore(b)).To(Succeed())

			for i := range c.Size() {
				got, err := keysAPI(c.Endpoints()[i:i+1]).Get(ctx, "/etcdproc/kept", &client.GetOptions{Quorum: true})
				Expect(err).NotTo(HaveOccurred())
				Expect(got.Node.Value).To(Equal("old"))
				Expect(got.ClusterID).To(Equal(before.ClusterID))
			}
		}, SpecTimeout(30*time.Second))
	})
})

var _ = Describe("Cluster behind peer proxies", Label("etcd"), func() {
	It("partitions a follower: it serves its old store without a quorum, then heals", func(ctx SpecContext) {
		c, err := etcdproc.StartCluster(3, etcdproc.Options{Output: GinkgoWriter, PeerProxies: true})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(c.Stop)
		leader, err := c.Leader()
		Expect(err).NotTo(HaveOccurred())
		follower := (leader + 1) % 3
		all := keysAPI(c.Endpoints())
		_, err = all.Set(ctx, "/etcdproc/p", "old", nil)
		Expect(err).NotTo(HaveOccurred())
		cut := keysAPI(c.Endpoints()[follower : follower+1])
		Eventually(func() (string, error) {
			resp, err := cut.Get(ctx, "/etcdproc/p", nil)
			if err != nil {
				return "", err
			}
			return resp.Node.Value, nil
		}).WithContext(ctx).Should(Equal("old"))

		Expect(c.Partition(follower)).To(Succeed())
		before, err := cut.Get(ctx, "/etcdproc/p", nil)
		Expect(err).NotTo(HaveOccurred())
		others, err := c.KeysAPIOf(leader, (leader+2)%3)
		Expect(err).NotTo(HaveOccurred())
		_, err = others.Set(ctx, "/etcdproc/p", "new", nil)
		Expect(err).NotTo(HaveOccurred())
		Consistently(func() (string, error) {
			resp, err := cut.Get(ctx, "/etcdproc/p", nil)
			if err != nil {
				return "", err
			}
			Expect(resp.Index).To(Equal(before.Index), "the cut member's store stays where it was")
			return resp.Node.Value, nil
		}).WithContext(ctx).WithTimeout(time.Second).Should(Equal("old"))
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err = cut.Get(short, "/etcdproc/p", &client.GetOptions{Quorum: true})
		Expect(err).To(HaveOccurred(), "a quorum read needs the quorum the member has lost")

		Expect(c.Heal()).To(Succeed())
		Eventually(func() (string, error) {
			resp, err := cut.Get(ctx, "/etcdproc/p", nil)
			if err != nil {
				return "", err
			}
			return resp.Node.Value, nil
		}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Equal("new"))
	}, SpecTimeout(60*time.Second))
})

var _ = Describe("A member whose test process dies", Label("etcd"), func() {
	It("dies with it (Pdeathsig)", func(ctx SpecContext) {
		// The helper is this test binary: TestMain sees helperEnv, starts
		// a member, prints its pid and blocks until killed.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+GinkgoT().TempDir())
		cmd.Stderr = GinkgoWriter
		out, err := cmd.StdoutPipe()
		Expect(err).NotTo(HaveOccurred())
		Expect(cmd.Start()).To(Succeed())
		DeferCleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		Expect(err).NotTo(HaveOccurred())
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		Expect(err).NotTo(HaveOccurred())
		Expect(alive(pid)).To(BeTrue())

		Expect(cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())

		Eventually(alive).WithContext(ctx).WithArguments(pid).Should(BeFalse())
	}, SpecTimeout(20*time.Second))
})

// alive reports whether pid runs (a zombie left to an init that doesn't
// reap counts as dead).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
