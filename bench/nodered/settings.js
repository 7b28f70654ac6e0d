// Node-RED settings for the collector benchmark (bench/bench_collector.py), run headless:
//   cd <tmp> && node .../node_modules/node-red/red.js --settings .../settings.js --userDir <tmp>
// The benchmark copies flows.json into <tmp>, runs Node-RED there and sets the environment
// variables below; the flow reads its broker port, InfluxDB port and database through ${...}
// substitution.
"use strict";

module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.MACHIKADO_NODERED_PORT || "1880", 10),
    flowFile: "flows.json",
    // No credentials in the flow; an unset secret would make Node-RED warn and write a key file.
    credentialSecret: false,
    // The admin HTTP API stays up (the benchmark probes GET /flows); the editor UI is not needed.
    httpAdminRoot: "/",
    disableEditor: true,
    httpNodeRoot: false,
    httpStatic: false,
    logging: {
        console: { level: "info", metrics: false, audit: false },
    },
    // node id -> {trial, site}: the flow's function tags readings as our collector does.
    functionGlobalContext: {
        fleet: JSON.parse(process.env.MACHIKADO_BENCH_FLEET || "{}"),
    },
    editorTheme: { projects: { enabled: false } },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    externalModules: {
        autoInstall: false,
        palette: { allowInstall: false },
        modules: { allowInstall: false },
    },
};
