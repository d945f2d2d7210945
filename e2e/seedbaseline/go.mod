module github.com/etcdsync/etcdsync/e2e/seedbaseline

go 1.26.0

require github.com/etcdsync/etcdsync v0.0.0

require github.com/tchap/go-patricia/v2 v2.3.3

replace github.com/etcdsync/etcdsync => ../..
