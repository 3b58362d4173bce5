// Package flowapi is the HTTP API of the flow cache, served by the webhook on its HTTPS
// port: node agents and other sources push flow records (POST /v1/flows), and CI exports a
// snapshot of the cache (GET /v1/flows, Export). Callers are authenticated by bearer token
// through an Authenticator (package flowapi/tokenreview asks the API server) and authorised
// by user. The node agent links only the wire half of it (paths, headers, IngestResult).
package flowapi
