import { describe, expect, it } from "bun:test";
import { hostCheckFor, hostnameOf, isLoopbackAddress } from "../../src/pool/loopback-host";

describe("hostCheckFor", () => {
  it("checks only loopback listeners without credentials", () => {
    expect(hostCheckFor({ host: "127.0.0.1", hasCredentials: false })).toBeFunction();
    expect(hostCheckFor({ host: "::1", hasCredentials: false })).toBeFunction();
    expect(hostCheckFor({ host: "localhost", hasCredentials: false })).toBeFunction();
    expect(hostCheckFor({ host: "127.0.0.1", hasCredentials: true })).toBeUndefined();
    expect(hostCheckFor({ host: "0.0.0.0", hasCredentials: false })).toBeUndefined();
    expect(hostCheckFor({ host: "192.168.1.5", hasCredentials: false })).toBeUndefined();
  });

  it("answers loopback names on any port, the allowed ones, and a request without Host; nothing else", () => {
    const allowed = hostCheckFor({ host: "127.0.0.1", hasCredentials: false, allowedHosts: ["Keypool.Internal"] })!;
    const verdicts = Object.fromEntries(
      [
        "localhost",
        "localhost:8787",
        "LocalHost:1",
        "localhost.",
        "app.localhost:3000",
        "127.0.0.1:8787",
        "127.1.2.3",
        "[::1]:8787",
        "[::ffff:127.0.0.1]:80",
        "keypool.internal:8787",
        "evil.example",
        "evil.example:8787",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "[::2]:8787",
        "10.0.0.1",
        "",
      ].map((host) => [host, allowed(host)]),
    );
    expect(verdicts).toEqual({
      localhost: true,
      "localhost:8787": true,
      "LocalHost:1": true,
      "localhost.": true,
      "app.localhost:3000": true,
      "127.0.0.1:8787": true,
      "127.1.2.3": true,
      "[::1]:8787": true,
      "[::ffff:127.0.0.1]:80": true,
      "keypool.internal:8787": true,
      "evil.example": false,
      "evil.example:8787": false,
      "localhost.evil.example": false,
      "127.0.0.1.nip.io": false,
      "[::2]:8787": false,
      "10.0.0.1": false,
      "": false,
    });
    expect(allowed(null)).toBe(true);
  });
});

describe("hostnameOf", () => {
  it("drops the port and a trailing dot, keeps IPv6 brackets", () => {
    expect(["Evil.Example:80", "[::1]:8787", "[::1]", "localhost.", "a.b"].map(hostnameOf)).toEqual([
      "evil.example",
      "[::1]",
      "[::1]",
      "localhost",
      "a.b",
    ]);
  });
});

describe("isLoopbackAddress", () => {
  it("knows config listen hosts", () => {
    expect(
      ["127.0.0.1", "127.0.0.53", "::1", "localhost", "0.0.0.0", "::", "10.1.1.1", "example.com"].map(
        isLoopbackAddress,
      ),
    ).toEqual([true, true, true, true, false, false, false, false]);
  });
});
