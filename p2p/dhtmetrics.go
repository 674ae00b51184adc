package p2p

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// The DHT (go-libp2p-kad-dht) reports its metrics only through
// OpenTelemetry's global meter provider, not to a Prometheus registerer.
// exportDHTMetrics bridges them: an OpenTelemetry meter provider whose
// reader is a Prometheus collector on the node's registry. The provider is
// global, so the first node given a registerer in a process gets the DHT's
// series (darkchatd runs one node per process), as with libp2p's own
// collectors (Config.Registerer).
var dhtMetricsOnce sync.Once

func exportDHTMetrics(reg prometheus.Registerer) (err error) {
	dhtMetricsOnce.Do(func() {
		var exporter *otelprom.Exporter
		exporter, err = otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithNamespace("libp2p_kad_dht"), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
		if err != nil {
			err = fmt.Errorf("export the DHT's metrics: %w", err)
			return
		}
		otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)))
	})
	return err
}
