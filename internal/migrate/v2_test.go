package migrate_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/internal/migrate"
)

var _ = Describe("V2Reader", func() {
	// A v2 answer as etcd 3.5 writes it: a directory, a TTL key (its
	// expiration with nanoseconds), an empty directory, and a hidden key
	// that a real etcd would have left out.
	const tree = `{"action":"get","node":{"key":"/p","dir":true,"nodes":[
		{"key":"/p/a","value":"1","modifiedIndex":5,"createdIndex":5},
		{"key":"/p/d","dir":true,"nodes":[
			{"key":"/p/d/t","value":"2","expiration":"2030-01-01T00:00:00.5Z","ttl":99,"modifiedIndex":7,"createdIndex":7},
			{"key":"/p/d/e","dir":true}]},
		{"key":"/p/_h","value":"hidden","modifiedIndex":8,"createdIndex":8}]}}`
	var (
		srv    *httptest.Server
		status int
		body   string
		query  string
		user   string
	)
	BeforeEach(func() {
		status, body = http.StatusOK, tree
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			query = r.URL.RawQuery
			user, _, _ = r.BasicAuth()
			w.Header().Set("X-Etcd-Index", "42")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		DeferCleanup(srv.Close)
	})
	reader := func() *migrate.V2Reader {
		return &migrate.V2Reader{Endpoints: []string{srv.URL}, Client: srv.Client(), Username: "u", Password: "pw"}
	}

	It("reads keys with their modifiedIndex and expiry second, flattening directories and reporting empty ones", func() {
		s, err := reader().Snapshot(context.Background(), "/p")
		Expect(err).NotTo(HaveOccurred())
		Expect(query).To(Equal("quorum=true&recursive=true"))
		Expect(user).To(Equal("u"))
		Expect(s.Index).To(Equal(uint64(42)))
		Expect(s.Keys).To(Equal(map[string]migrate.V2Key{
			"/p/a":   {Entry: migrate.Entry{Value: "1"}, Modified: 5},
			"/p/d/t": {Entry: migrate.Entry{Value: "2", Expires: 1893456001}, Modified: 7}, // rounded up
		}))
		Expect(s.EmptyDirs).To(ConsistOf("/p/d/e"))
	})

	It("names a missing prefix, a prefix that is a key, and refused credentials", func() {
		status, body = http.StatusNotFound, `{"errorCode":100,"message":"Key not found","cause":"/p","index":42}`
		_, err := reader().Snapshot(context.Background(), "/p")
		Expect(errors.Is(err, migrate.ErrPrefixMissing)).To(BeTrue())
		Expect(errors.Is(reader().CheckPrefix(context.Background(), "/p"), migrate.ErrPrefixMissing)).To(BeTrue())
		_, found, err := reader().Key(context.Background(), "/p/x")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeFalse())

		status, body = http.StatusOK, `{"action":"get","node":{"key":"/p","value":"v","modifiedIndex":3}}`
		Expect(reader().CheckPrefix(context.Background(), "/p")).To(MatchError(ContainSubstring("is a key, not a directory")))

		status, body = http.StatusUnauthorized, `{"message":"The request requires user authentication"}`
		Expect(errors.Is(reader().CheckPrefix(context.Background(), "/p"), migrate.ErrUnauthorized)).To(BeTrue())
	})

	It("says when an endpoint does not answer v2 JSON", func() {
		status, body = http.StatusNotFound, "404 page not found\n" // etcd 3.6 and later
		err := reader().CheckPrefix(context.Background(), "/p")
		Expect(err).To(MatchError(ContainSubstring("does it serve the v2 API?")))
	})
})
