package actors_test

import (
	"errors"
	"io"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/internal/source"
	m "github.com/etcdsync/etcdsync/messages"
)

var _ = Describe("Watch errors", func() {
	errLost := errors.New("position lost")
	It("gives up after Limit retryable errors in a row, and counts from zero after a success", func() {
		w := actors.WatchErrors{Limit: 3, Classify: func(err error) source.Verdict {
			if errors.Is(err, errLost) {
				return source.LostSync
			}
			return source.Retry
		}}
		cut := io.ErrUnexpectedEOF
		Expect(w.Observe(cut)).To(Equal(source.Retry))
		Expect(w.Observe(cut)).To(Equal(source.Retry))
		w.Succeeded()
		Expect(w.Observe(cut)).To(Equal(source.Retry))
		Expect(w.Observe(cut)).To(Equal(source.Retry))
		Expect(w.Observe(cut)).To(Equal(source.LostSync))
		w.Succeeded()
		Expect(w.Observe(errLost)).To(Equal(source.LostSync), "the source's verdict, not counted")
	})

	DescribeTable("CheckReconnect",
		func(startID string, seen int, id string, now int, want any) {
			err := actors.CheckReconnect(startID, uint64(seen), id, uint64(now))
			if want == nil {
				Expect(err).NotTo(HaveOccurred())
			} else {
				Expect(err).To(MatchError(want.(error)))
			}
		},
		Entry("same cluster, moved on", "a", 10, "a", 12, nil),
		Entry("same cluster, same index", "a", 10, "a", 10, nil),
		Entry("same cluster, index back: restored", "a", 10, "a", 4, m.ErrIndexRegressed),
		Entry("another cluster", "a", 10, "b", 400, m.ErrClusterIDChanged),
		Entry("another cluster at a low index is a reset, not a regression", "a", 10, "b", 3, m.ErrClusterIDChanged),
		Entry("no ID known", "", 10, "b", 12, nil),
	)
})
