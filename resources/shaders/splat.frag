#version 130
// Gaussian falloff, gsplat's alpha rules, premultiplied output for back-to-front "over" blending.
varying vec3 v_color;
varying vec2 v_offset;
varying vec3 v_conic;
varying float v_opacity;

void main() {
    vec2 d = v_offset;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    float alpha = min(0.99, v_opacity * exp(power));
    if (power > 0.0 || alpha < 1.0 / 255.0) discard;
    gl_FragColor = vec4(v_color * alpha, alpha);
}
