// Files embedded with `import path from "…" with { type: "file" }`: the import is the file's path,
// on disk when run from source and inside the executable after `bun build --compile`.
declare module "swagger-ui-dist/swagger-ui.css" {
  const path: string;
  export default path;
}
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const path: string;
  export default path;
}
