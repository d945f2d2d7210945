package supervisor_test

import (
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/messages"
	"github.com/etcdsync/etcdsync/supervisor"
)

type nopCallbacks struct{}

func (nopCallbacks) OnStatusUpdated(messages.SyncStatus) {}
func (nopCallbacks) OnUpdates([]messages.Update)         {}

var _ = Describe("Start", func() {
	DescribeTable("rejects a bad config, naming the field",
		func(edit func(*supervisor.Config), field string) {
			cfg := supervisor.Config{Endpoints: []string{"http://127.0.0.1:2379"}}
			edit(&cfg)
			s, err := supervisor.Start(system, cfg, nopCallbacks{})
			Expect(s).To(BeNil())
			var ce *supervisor.ConfigError
			Expect(errors.As(err, &ce)).To(BeTrue(), "error %v", err)
			Expect(ce.Field).To(Equal(field))
			Expect(err.Error()).To(ContainSubstring(field))
		},
		Entry("no endpoint", func(c *supervisor.Config) { c.Endpoints = nil }, "Endpoints"),
		Entry("not a URL", func(c *supervisor.Config) { c.Endpoints = []string{"http://a", "::nope"} }, "Endpoints[1]"),
		Entry("no scheme", func(c *supervisor.Config) { c.Endpoints = []string{"127.0.0.1:2379"} }, "Endpoints[0]"),
		Entry("relative prefix", func(c *supervisor.Config) { c.Prefix = "calico/v1" }, "Prefix"),
		Entry("root prefix", func(c *supervisor.Config) { c.Prefix = "/" }, "Prefix"),
		Entry("negative poll interval", func(c *supervisor.Config) { c.ClusterIDPollInterval = -time.Second }, "ClusterIDPollInterval"),
		Entry("negative stale timeout", func(c *supervisor.Config) { c.StaleSnapshotTimeout = -1 }, "StaleSnapshotTimeout"),
		Entry("negative backoff", func(c *supervisor.Config) { c.Backoff.Initial = -1 }, "Backoff.Initial"),
		Entry("backoff max below initial", func(c *supervisor.Config) {
			c.Backoff = supervisor.BackoffConfig{Initial: time.Second, Max: time.Millisecond}
		}, "Backoff.Max"),
		Entry("negative batch size", func(c *supervisor.Config) { c.SnapshotBatchSize = -5 }, "SnapshotBatchSize"),
		Entry("unknown reset policy", func(c *supervisor.Config) { c.OnClusterReset = 7 }, "OnClusterReset"),
	)

	It("rejects a start with nowhere to deliver", func() {
		_, err := supervisor.Start(system, supervisor.Config{Endpoints: []string{"http://127.0.0.1:2379"}}, nil)
		var ce *supervisor.ConfigError
		Expect(errors.As(err, &ce)).To(BeTrue())
		Expect(ce.Field).To(Equal("callbacks"))
	})
})
