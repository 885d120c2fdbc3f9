/** Argument groups shared by several commands, so each flag means the same everywhere. */

export const configArg = {
  config: { type: "string", alias: "c", description: "Path to the config file", default: "keypool.yaml" },
} as const;

/** For commands that can run without a file: -c, else keypool.yaml, else pools from the environment. */
export const configOrEnvArg = {
  config: {
    type: "string",
    alias: "c",
    description: "Path to the config file (default: keypool.yaml, else KEYPOOL_POOL_<NAME>_KEYS variables)",
  },
} as const;

export const jsonArg = {
  json: { type: "boolean", description: "Print JSON for machines" },
} as const;

/** For commands that talk to a running daemon: its address and API key come from -c, or these flags. */
export const daemonArgs = {
  ...configArg,
  url: { type: "string", description: "Daemon URL (default: server.addr from the config)" },
  "api-key": { type: "string", description: "API key (default: server.api_key from the config, or KEYPOOL_API_KEY)" },
} as const;

/** For the commands of api-key-lb's users (start, stop): its config.json, else found where api-key-lb looks. */
export const apiKeyLbConfigArg = {
  config: {
    type: "string",
    alias: "c",
    description:
      "api-key-lb config file (default: API_KEY_LB_CONFIG, else ./api-key-lb.json, else ~/.config/api-key-lb/config.json)",
  },
} as const;
