package e2e

import "github.com/hoist-project/hoist/packaging/images"

// proxyManifest is what the proxy e2e tests apply: a 1-replica netexec
// Deployment pinned to node1 (readiness probe on /healthz; on SIGTERM it
// keeps serving 6 s before stopping, as a preStop sleep would, so a pod
// only stops once the proxies have dropped its terminating endpoint), a
// netexec client pod on node2, and Services in front of the Deployment:
// ClusterIP (TCP 80 and UDP 81), NodePort, NodePort with
// externalTrafficPolicy Local, ClientIP session affinity, and one whose
// selector matches nothing.
func proxyManifest() string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 10
      nodeSelector: {kubernetes.io/hostname: node1}
      containers:
      - name: netexec
        image: ` + images.TestboxImage + `
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "/testbox netexec & p=$!; trap 'sleep 6; kill $p' TERM; wait $p; wait $p"]
        ports:
        - containerPort: 8080
        - containerPort: 8081
          protocol: UDP
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: node2}
  containers:
  - name: netexec
    image: ` + images.TestboxImage + `
    imagePullPolicy: Never
    command: ["/testbox", "netexec"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: udp, port: 81, targetPort: 8081, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: web-nodeport
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web-local
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web-sticky
spec:
  sessionAffinity: ClientIP
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: nothing
spec:
  selector: {app: nothing}
  ports:
  - {port: 80, targetPort: 8080}
`
}
