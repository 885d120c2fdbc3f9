/** The event log keeps this many of the most recent transitions; older rows are pruned as new ones arrive. */
export const MAX_EVENTS = 10_000;
