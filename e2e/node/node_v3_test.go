package node_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// putKeyV3 sets key to value through etcd's v3 JSON gateway, as a curl
// would; keys and values travel in base64.
func putKeyV3(ctx context.Context, etcdURL, key, value string) {
	GinkgoHelper()
	b64 := base64.StdEncoding.EncodeToString
	body, err := json.Marshal(map[string]string{"key": b64([]byte(key)), "value": b64([]byte(value))})
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, etcdURL+"/v3/kv/put", strings.NewReader(string(body)))
	Expect(err).NotTo(HaveOccurred())
	resp, err := httpClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	Expect(resp.StatusCode).To(Equal(http.StatusOK), "POST /v3/kv/put %s", key)
}

var _ = Describe("The node, --etcd-api v3", Label("v3"), func() {
	It("syncs its embedded etcd through v3: a key put through the v3 gateway is on stdout and in /state", func(ctx SpecContext) {
		n := startEmbeddedNode("--etcd-api", "v3")
		Eventually(n.lastStatus).WithContext(ctx).WithTimeout(20 * time.Second).Should(Equal("in-sync"))
		By("telling the user how to write a key through v3")
		Expect(n.session.Err).To(gbytes.Say(regexp.QuoteMeta("curl " + n.etcdURL + "/v3/kv/put -d '{")))

		const key = "/calico/v1/config/Example"
		putKeyV3(ctx, n.etcdURL, key, "hello")
		putKeyV3(ctx, n.etcdURL, "/calico/v1", "the prefix's own key: not in the view")
		Eventually(n.updates).WithContext(ctx).WithTimeout(5 * time.Second).WithArguments(key).Should(
			ConsistOf(And(HaveField("Type", "new"), HaveField("Value", HaveValue(Equal("hello"))),
				HaveField("Revision", BeNumerically(">", 0)))))
		Eventually(n.state).WithContext(ctx).WithTimeout(5 * time.Second).Should(
			Equal(state{Status: "in-sync", Keys: map[string]string{key: "hello"}}))
		Expect(statusCode(ctx, Default, n.httpURL+"/readyz")).To(Equal(http.StatusOK))
	}, SpecTimeout(60*time.Second))

	When("given an external etcd 3.7, which serves no v2 API", func() {
		var cluster *etcdproc.Cluster
		BeforeEach(func() {
			var err error
			cluster, err = etcdproc.StartMember(etcdproc.Options{Output: GinkgoWriter, Version: etcdproc.V37})
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(cluster.Stop)
		})

		It("syncs it with --etcd-api v3 (from ETCDSYNC_ETCD_API too)", func(ctx SpecContext) {
			etcd := cluster.Endpoints()[0]
			putKeyV3(ctx, etcd, "/calico/v1/before", "1")
			n := startExternalNodeEnv(cluster.Endpoints(), []string{"ETCDSYNC_ETCD_API=v3"})
			Eventually(n.state).WithContext(ctx).WithTimeout(20 * time.Second).Should(
				Equal(state{Status: "in-sync", Keys: map[string]string{"/calico/v1/before": "1"}}))
			for i := range 20 {
				putKeyV3(ctx, etcd, fmt.Sprintf("/calico/v1/after/%02d", i), fmt.Sprint(i))
			}
			Eventually(n.updates).WithContext(ctx).WithTimeout(5 * time.Second).WithArguments("/calico/v1/after/19").Should(
				ConsistOf(HaveField("Type", "new")))
			Eventually(func(g Gomega) float64 { return n.metric(ctx, g, "etcdsync_keys") }).WithContext(ctx).
				Should(BeEquivalentTo(21))
		}, SpecTimeout(60*time.Second))

		It("is not ready with the default --etcd-api v2, and says which API is missing and which flag to use", func(ctx SpecContext) {
			n := startExternalNode(cluster.Endpoints(), "--cluster-id-poll-interval", "200ms")
			Eventually(n.session.Err).WithContext(ctx).WithTimeout(20 * time.Second).Should(
				gbytes.Say(`does not serve the v2 API.*--etcd-api v3`))
			Expect(statusCode(ctx, Default, n.httpURL+"/readyz")).NotTo(Equal(http.StatusOK))
			Expect(n.statuses(Default)).NotTo(ContainElement("in-sync"))
		}, SpecTimeout(60*time.Second))
	})
})
