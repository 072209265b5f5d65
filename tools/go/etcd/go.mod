// Wrapper module that builds etcd v3.7.3 (the server binary, go.etcd.io/etcd/server/v3's
// main package) for the Kubernetes API-server test (tests/k8s). The server module's own
// go.mod points its sibling modules at ../api etc. with replace directives that Go
// ignores in a dependency; they are required at their published versions instead.
module meshmart/tools/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.7.3
