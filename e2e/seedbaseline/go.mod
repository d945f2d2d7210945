module github.com/etcdsync/etcdsync/e2e/seedbaseline

go 1.26.0

require github.com/etcdsync/etcdsync v0.0.0

require (
	github.com/tchap/go-patricia/v2 v2.3.3
	go.etcd.io/etcd/client/v2 v2.305.35
)

require (
	github.com/coreos/go-semver v0.3.0 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	go.etcd.io/etcd/api/v3 v3.5.35 // indirect
	go.etcd.io/etcd/client/pkg/v3 v3.5.35 // indirect
)

replace github.com/etcdsync/etcdsync => ../..
