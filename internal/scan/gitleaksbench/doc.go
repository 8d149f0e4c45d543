// Package gitleaksbench compares keygate's scanner with gitleaks
// (github.com/zricethezav/gitleaks/v8) on the same generated, labelled
// corpus: speed, and recall and precision on the labelled part. It is a
// module of its own so that gitleaks and its dependencies stay out of
// keygate's go.mod; run it from this directory:
//
//	go test -run TestCompareWithGitleaks -v
//	go test -run '^$' -bench . -benchtime 3x
package gitleaksbench
