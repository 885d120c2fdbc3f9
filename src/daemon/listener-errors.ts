/**
 * What every listener does with an error its own handling let through. Bun.serve's `development`
 * mode is on unless NODE_ENV=production, and in it an uncaught error is answered with an HTML page
 * of source lines and absolute paths; without an `error` handler, production mode still answers
 * a bare 500. Every listener turns it off and answers in its own JSON error shape instead.
 */
export function listenerErrorOptions(answer: (error: Error) => Response) {
  return { development: false as const, error: answer };
}
