#version 130
// One triangle per Gaussian, shaped by its EWA-projected 2D covariance (the engine's maths:
// camera-space covariance, pinhole Jacobian with gsplat's clamped tangents, +0.3 px dilation).
// Projection happens in OpenCV camera space; u_cam_to_clip (see app/viewer/gl_camera.py) is the
// only step into GL conventions.

// Not instanced: instancing runs llvmpipe's vertex pipeline once per instance, which made
// 100k splats ~1.6x slower there. Each splat is one triangle circumscribing its ellipse (3 vertices
// instead of a quad's 4 and half the triangle setups: ~20% faster on llvmpipe for 30% more area,
// whose extra fragments are discarded). gl_VertexID / 3 is its slot in draw order, and its data
// are 4 RGBA32F texels at that slot of u_rows (app/viewer/splat_data.py documents the columns).
attribute vec2 a_corner;            // equilateral triangle around the unit circle, per splat
uniform sampler2D u_rows;           // 4096 texels wide: 1024 splats per row, back to front

uniform mat4 u_viewmat;             // world -> OpenCV camera
uniform mat4 u_cam_to_clip;
uniform mat4 u_side_planes;         // rows: inward unit normals of the four image-border planes
uniform vec4 u_intrinsics;          // fx fy cx cy
uniform vec2 u_size;                // W H in pixels
uniform vec3 u_eye;                 // camera centre in world
uniform float u_near;
uniform int u_sh_degree;
uniform sampler2D u_sh;             // 4096 wide, 16 RGB texels per splat

varying vec3 v_color;
varying vec2 v_offset;              // pixels from the splat centre (image axes, y down)
varying vec3 v_conic;
varying float v_opacity;

const float SH_C0 = 0.28209479177387814;
const float EXTENT_CAP = 3.33;      // gsplat's radius factor; alpha < 1/255 beyond it anyway

void cull() { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); }  // outside the clip volume: no fragments

float splat_index;

vec3 sh_coeff(int k) {
    int t = int(splat_index) * 16 + k;
    return texelFetch(u_sh, ivec2(t % 4096, t / 4096), 0).rgb;
}

vec3 sh_color(vec3 dc, vec3 dir) {
    vec3 c = SH_C0 * dc;
    if (u_sh_degree < 1) return c;
    float x = dir.x, y = dir.y, z = dir.z;
    c += 0.4886025119029199 * (-y * sh_coeff(1) + z * sh_coeff(2) - x * sh_coeff(3));
    if (u_sh_degree < 2) return c;
    float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
    c += 1.0925484305920792 * xy * sh_coeff(4)
       - 1.0925484305920792 * yz * sh_coeff(5)
       + 0.31539156525252005 * (2.0 * zz - xx - yy) * sh_coeff(6)
       - 1.0925484305920792 * xz * sh_coeff(7)
       + 0.5462742152960396 * (xx - yy) * sh_coeff(8);
    if (u_sh_degree < 3) return c;
    c += -0.5900435899266435 * y * (3.0 * xx - yy) * sh_coeff(9)
       + 2.890611442640554 * xy * z * sh_coeff(10)
       - 0.4570457994644658 * y * (4.0 * zz - xx - yy) * sh_coeff(11)
       + 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh_coeff(12)
       - 0.4570457994644658 * x * (4.0 * zz - xx - yy) * sh_coeff(13)
       + 1.445305721320277 * z * (xx - yy) * sh_coeff(14)
       - 0.5900435899266435 * x * (xx - 3.0 * yy) * sh_coeff(15);
    return c;
}

void main() {
    int slot = gl_VertexID / 3;
    ivec2 texel = ivec2((slot & 1023) * 4, slot >> 10);
    vec4 t0 = texelFetch(u_rows, texel, 0);  // mean, opacity
    float opacity = t0.w;
    if (opacity < 1.0 / 255.0) { cull(); return; }
    vec3 p = (u_viewmat * vec4(t0.xyz, 1.0)).xyz;
    if (p.z <= u_near) { cull(); return; }
    vec4 t1 = texelFetch(u_rows, texel + ivec2(1, 0), 0);  // xx xy xz yy
    vec4 t2 = texelFetch(u_rows, texel + ivec2(2, 0), 0);  // yz zz dc.r dc.g

    mat3 cov_w = mat3(t1.x, t1.y, t1.z,
                      t1.y, t1.w, t2.x,
                      t1.z, t2.x, t2.y);
    // Cheap conservative cull before the projection: a sphere of 3.33 x the largest std dev
    // (bounded by the trace) entirely outside one of the image-border planes.
    float radius = EXTENT_CAP * sqrt(t1.x + t1.w + t2.y) + 1e-6;
    vec4 plane_dist = u_side_planes * vec4(p, 0.0);
    if (any(lessThan(plane_dist, vec4(-radius)))) { cull(); return; }

    mat3 rot = mat3(u_viewmat);
    mat3 cov_c = rot * cov_w * transpose(rot);
    float fx = u_intrinsics.x, fy = u_intrinsics.y, cx = u_intrinsics.z, cy = u_intrinsics.w;
    vec2 tan_fov = 0.5 * u_size / vec2(fx, fy);
    vec2 lim_pos = (u_size - vec2(cx, cy)) / vec2(fx, fy) + 0.3 * tan_fov;
    vec2 lim_neg = vec2(cx, cy) / vec2(fx, fy) + 0.3 * tan_fov;
    vec2 txy = p.z * clamp(p.xy / p.z, -lim_neg, lim_pos);
    float rz = 1.0 / p.z, rz2 = rz * rz;
    // GLSL matrices are column-major: J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]
    mat3x2 J = mat3x2(fx * rz, 0.0, 0.0, fy * rz, -fx * txy.x * rz2, -fy * txy.y * rz2);
    mat2 cov2 = J * cov_c * transpose(J);
    float a = cov2[0][0] + 0.3, b = cov2[0][1], c = cov2[1][1] + 0.3;
    float det = a * c - b * b;
    if (det <= 0.0) { cull(); return; }
    vec2 mean2d = vec2(fx * p.x * rz + cx, fy * p.y * rz + cy);

    // The ellipse where opacity * exp(-r^2/2) >= 1/255, on its principal axes; the triangle is
    // the unit circle's circumscribed triangle mapped onto it.
    float extent = min(EXTENT_CAP, sqrt(2.0 * log(255.0 * opacity)));
    float mid = 0.5 * (a + c);
    float spread = sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0));
    float l1 = mid + spread, l2 = max(mid - spread, 1e-8);
    vec2 axis1 = abs(b) > 1e-12 ? normalize(vec2(b, l1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
    vec2 axis2 = vec2(-axis1.y, axis1.x);
    vec2 half_size = extent * sqrt(vec2(l1, l2));
    vec2 offset = a_corner.x * half_size.x * axis1 + a_corner.y * half_size.y * axis2;

    vec4 centre_clip = u_cam_to_clip * vec4(p, 1.0);
    vec2 ndc = centre_clip.xy / centre_clip.w + offset * vec2(2.0, -2.0) / u_size;
    gl_Position = vec4(ndc, centre_clip.z / centre_clip.w, 1.0);

    v_offset = offset;
    v_conic = vec3(c, -b, a) / det;
    v_opacity = opacity;
    vec4 t3 = texelFetch(u_rows, texel + ivec2(3, 0), 0);  // dc.b, highlight flag, splat index
    splat_index = t3.z;
    vec3 color = max(sh_color(vec3(t2.zw, t3.x), normalize(t0.xyz - u_eye)) + 0.5, 0.0);
    v_color = t3.y > 0.5 ? mix(color, vec3(1.0, 0.55, 0.1), 0.6) : color;
}
